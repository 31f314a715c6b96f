"""Rules of data-subject requests and visitor self-service. No I/O here."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tracker.domain.consent import HEX32
from tracker.domain.payloads import PayloadError
from tracker.domain.register import add_months

ACCESS = "access"
RECTIFICATION = "rectification"
ERASURE = "erasure"
OBJECTION = "objection"
KINDS: dict[str, str] = {
    ACCESS: "Access: a copy of the data held about my address",
    RECTIFICATION: "Rectification: correct the data held about my address",
    ERASURE: "Erasure: delete the data held about my address",
    OBJECTION: "Objection to direct marketing: never send me marketing again",
}

UNVERIFIED = "unverified"
PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"

# Identity check: a 6-digit code (or the signed link sent with it), 10 minutes, 3 tries.
CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 3
# GDPR Art. 12(3): answer within one month of receipt.
DUE_MONTHS = 1

MAX_DETAILS = 4000
MAX_EMAIL = 254
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
MAX_REFERENCE = 300
MAX_AUTHORITY = 200
# A lookup wider than this is a fishing expedition, not an identified request.
MAX_LOOKUP_WINDOW = timedelta(days=366)


class RequestInvalid(ValueError):
    """A request form that cannot be accepted; `field` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def normalize_email(email: str) -> str:
    """The address as stored and compared: trimmed and lower-cased."""
    return email.strip().lower()


def check_request(kind: str, email: str, details: str) -> tuple[str, str, str]:
    """Validate a rights request; return (kind, normalized e-mail, details)."""
    if kind not in KINDS:
        raise RequestInvalid("kind", "choose one of the rights listed")
    email = normalize_email(email)
    if len(email) > MAX_EMAIL or not EMAIL.fullmatch(email):
        raise RequestInvalid("email", "is not an e-mail address")
    details = details.strip()
    if len(details) > MAX_DETAILS:
        raise RequestInvalid("details", f"must be at most {MAX_DETAILS} characters")
    if kind == RECTIFICATION and not details:
        raise RequestInvalid("details", "say what should be corrected")
    return kind, email, details


def due_date(verified_at: datetime) -> datetime:
    """The legal deadline of a verified request."""
    return add_months(verified_at, DUE_MONTHS)


def parse_visitor_request(data: dict[str, Any]) -> str:
    """The visitor id of a self-service request body: {"visitor_id": "<32 hex>"}."""
    value = data.get("visitor_id")
    if not isinstance(value, str) or not HEX32.fullmatch(value):
        raise PayloadError("visitor_id", "must be 32 lower-case hexadecimal characters")
    return value


@dataclass(frozen=True, slots=True)
class LookupQuery:
    """An authorities' lookup: which addresses, when, and on what legal ground."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    starts_at: datetime
    ends_at: datetime
    authority: str
    legal_reference: str


def check_lookup(network: str, starts_at: datetime | None, ends_at: datetime | None,
                 authority: str, legal_reference: str) -> LookupQuery:
    """Validate an authorities' lookup; the legal reference is mandatory."""
    try:
        net = ipaddress.ip_network(network.strip(), strict=False)
    except ValueError as exc:
        raise RequestInvalid("network", "is not an IP address or network") from exc
    if starts_at is None or ends_at is None or ends_at <= starts_at:
        raise RequestInvalid("window", "give a start before the end")
    if ends_at - starts_at > MAX_LOOKUP_WINDOW:
        raise RequestInvalid("window", "must be at most a year")
    authority, legal_reference = authority.strip(), legal_reference.strip()
    if not authority or len(authority) > MAX_AUTHORITY:
        raise RequestInvalid("authority", "name the requesting authority")
    if len(legal_reference) < 3 or len(legal_reference) > MAX_REFERENCE:
        raise RequestInvalid("legal_reference",
                             "is mandatory: the legal basis and reference of the requisition")
    return LookupQuery(net, starts_at, ends_at, authority, legal_reference)


def in_network(ip: str | None, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip) in network
    except ValueError:
        return False
