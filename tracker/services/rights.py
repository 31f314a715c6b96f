"""Data-subject requests made by e-mail (contact-form and newsletter data carry no cookie).

unverified --(6-digit code or signed link, 10 minutes, 3 tries)--> pending --(dpo)--> approved
or denied. Nothing is disclosed before the requester proved they control the address, and
nothing is executed before the data protection officer approves. Every step is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from flask import current_app, render_template
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select

from tracker.domain import privacy as rules
from tracker.domain.register import BY_KEY, EXPORT_PERIOD
from tracker.extensions import db
from tracker.models import ErasureRecord, OppositionEntry, PrivacyRequest, User, VerificationCode
from tracker.services import audit, newsletter
from tracker.services.mailer import MailError, mailer_from_config
from tracker.services.privacy import delete_rows, opposition_hmac, require

EMAIL_CATEGORY = "user.contact.email"
# The processings whose data people reach by their e-mail address (requests run across them).
BY_EMAIL = ("contact_form", "newsletter")
_CODE_LABEL = b"tracker.privacy-code.v1"
_LINK_SALT = "tracker.privacy-request-link"
_EXPORT_SALT = "tracker.privacy-export"
# Columns of an export that are ours, not the requester's (hashes of one-time tokens).
_INTERNAL = ("token_sha256",)


class RequestError(Exception):
    """A step the requester (or the DPO) cannot take now, with a message to show."""


class VerificationFailed(RequestError):
    """A wrong, expired, exhausted or replayed code or link."""


def _secret() -> bytes:
    secret = current_app.config["SECRET_KEY"]
    return secret.encode() if isinstance(secret, str) else secret


def _code_hmac(nonce: str, code: str) -> str:
    key = hmac.new(_secret(), _CODE_LABEL, hashlib.sha256).digest()
    return hmac.new(key, f"{nonce}:{code}".encode(), hashlib.sha256).hexdigest()


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _public_url(path: str) -> str:
    return current_app.config["TRACKER_PUBLIC_URL"].rstrip("/") + path


def _send(to: str, subject: str, template: str, **context: Any) -> None:
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = subject
    message.set_content(render_template(f"privacy/mail/{template}.txt", **context))
    mailer_from_config(current_app.config).send(message)


# -- the requester ---------------------------------------------------------------------------

def open_request(kind: str, email: str, details: str, *, lang: str,
                 now: datetime) -> PrivacyRequest:
    """Record a request and e-mail its verification code and link to the address.

    Raises RequestInvalid for a bad form and RequestError when the e-mail cannot be sent
    (then nothing is kept).
    """
    kind, email, details = rules.check_request(kind, email, details)
    # One code per address at a time: the form must not be a way to flood someone's inbox.
    if db.session.scalar(select(PrivacyRequest.id).where(
            PrivacyRequest.email == email, PrivacyRequest.status == rules.UNVERIFIED,
            PrivacyRequest.created_at > now - rules.CODE_LIFETIME).limit(1)):
        raise RequestError("A code was sent to this address less than "
                           f"{int(rules.CODE_LIFETIME.total_seconds() // 60)} minutes ago: "
                           "please use it, or try again later.")
    request = PrivacyRequest(public_id=secrets.token_hex(16), kind=kind, email=email,
                             details=details or None, lang=lang if lang in ("fr", "en")
                             else "fr", status=rules.UNVERIFIED, created_at=now)
    db.session.add(request)
    db.session.flush()
    code = f"{secrets.randbelow(10 ** rules.CODE_DIGITS):0{rules.CODE_DIGITS}d}"
    nonce = secrets.token_hex(16)
    db.session.add(VerificationCode(request_id=request.id, code_hmac=_code_hmac(nonce, code),
                                    link_nonce=nonce, attempts=0, created_at=now,
                                    expires_at=now + rules.CODE_LIFETIME))
    link = _public_url(f"/privacy/requests/confirm/{_serializer(_LINK_SALT).dumps(nonce)}")
    try:
        _send(email, "Amniotic: confirm your request" if request.lang == "en"
              else "Amniotic : confirmez votre demande", "code", request=request, code=code,
              link=link, minutes=int(rules.CODE_LIFETIME.total_seconds() // 60))
    except MailError as exc:
        db.session.rollback()
        raise RequestError("We could not send the verification e-mail; please try again "
                           "later or write to contact@amniotic.studio.") from exc
    audit.record(None, "privacy_request.opened", f"privacy_request:{request.id}",
                 {"kind": kind})
    db.session.commit()
    return request


def find(public_id: str) -> PrivacyRequest | None:
    return db.session.scalar(select(PrivacyRequest).filter_by(public_id=public_id))


def _live_code(request: PrivacyRequest) -> VerificationCode | None:
    return db.session.scalar(select(VerificationCode).filter_by(request_id=request.id)
                             .order_by(VerificationCode.id.desc()).limit(1))


def _usable(code: VerificationCode | None, now: datetime) -> VerificationCode:
    if code is None:
        raise VerificationFailed("This code or link is invalid or has expired.")
    if code.used_at is not None:
        raise VerificationFailed("This code or link was already used.")
    if now >= code.expires_at:
        raise VerificationFailed("This code has expired; please make a new request.")
    if code.attempts >= rules.MAX_ATTEMPTS:
        raise VerificationFailed("Too many wrong codes; please make a new request.")
    return code


def verify_code(public_id: str, code: str, *, now: datetime) -> PrivacyRequest:
    """Check the code typed by the requester (3 attempts); the request then waits for the DPO."""
    request = find(public_id)
    if request is None or request.status != rules.UNVERIFIED:
        raise VerificationFailed("This request is unknown or already confirmed.")
    row = _usable(_live_code(request), now)
    row.attempts += 1
    typed = code.strip().replace(" ", "")
    if not hmac.compare_digest(row.code_hmac, _code_hmac(row.link_nonce, typed)):
        db.session.commit()  # the failed attempt counts, whatever happens next
        left = rules.MAX_ATTEMPTS - row.attempts
        raise VerificationFailed(f"Wrong code; {left} attempt(s) left." if left
                                 else "Wrong code; please make a new request.")
    return _verified(request, row, now)


def verify_link(token: str, *, now: datetime) -> PrivacyRequest:
    """Check a signed link; each link works once."""
    max_age = int(rules.CODE_LIFETIME.total_seconds())
    try:
        nonce = _serializer(_LINK_SALT).loads(token, max_age=max_age)
    except BadSignature as exc:  # includes SignatureExpired
        raise VerificationFailed("This link is invalid or has expired.") from exc
    row = db.session.scalar(select(VerificationCode).filter_by(link_nonce=str(nonce)))
    row = _usable(row, now)
    request = db.session.get(PrivacyRequest, row.request_id)
    if request is None or request.status != rules.UNVERIFIED:
        raise VerificationFailed("This request is unknown or already confirmed.")
    return _verified(request, row, now)


def _verified(request: PrivacyRequest, row: VerificationCode, now: datetime) -> PrivacyRequest:
    row.used_at = now
    request.status = rules.PENDING
    request.verified_at = now
    request.due_at = rules.due_date(now)
    audit.record(None, "privacy_request.verified", f"privacy_request:{request.id}",
                 {"kind": request.kind, "due_at": request.due_at.isoformat()})
    db.session.commit()
    return request


def requester_export(public_id: str, token: str, *, now: datetime) -> str:
    """The export prepared for an approved access request, while it lasts (5 days)."""
    lifetime = EXPORT_PERIOD.after(now) - now
    try:
        signed = _serializer(_EXPORT_SALT).loads(token, max_age=int(lifetime.total_seconds()))
    except BadSignature as exc:
        raise RequestError("This download link is invalid or has expired.") from exc
    request = find(public_id)
    if request is None or signed != public_id or request.export_json is None \
            or request.export_expires_at is None or now >= request.export_expires_at:
        raise RequestError("This export is no longer available.")
    audit.record(None, "privacy_request.export_downloaded", f"privacy_request:{request.id}")
    db.session.commit()
    return request.export_json


# -- the data protection officer -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class QueueItem:
    id: int
    kind: str
    status: str
    created_at: datetime
    verified_at: datetime | None
    due_at: datetime | None
    decided_at: datetime | None
    overdue: bool


def queue(actor: User, *, now: datetime, include_closed: bool = False) -> list[QueueItem]:
    """Verified requests, soonest due first; no addresses here, so listing is not a read."""
    require(actor, "data_subject_requests")
    statuses = [rules.PENDING] + ([rules.APPROVED, rules.DENIED] if include_closed else [])
    rows = db.session.scalars(select(PrivacyRequest)
                              .where(PrivacyRequest.status.in_(statuses))
                              .order_by(PrivacyRequest.status.desc(), PrivacyRequest.due_at))
    return [QueueItem(r.id, r.kind, r.status, r.created_at, r.verified_at, r.due_at,
                      r.decided_at, r.status == rules.PENDING and r.due_at is not None
                      and now > r.due_at) for r in rows]


def read(actor: User, request_id: int) -> PrivacyRequest | None:
    """One request with its address and text; the read is audited."""
    require(actor, "data_subject_requests")
    request = db.session.get(PrivacyRequest, request_id)
    if request is None or request.status == rules.UNVERIFIED:
        return None
    audit.record(actor, "privacy_request.read", f"privacy_request:{request.id}")
    db.session.commit()
    return request


def staff_export(actor: User, request_id: int) -> str | None:
    """The prepared export, for the DPO to check; the read is audited."""
    require(actor, "data_subject_requests")
    request = db.session.get(PrivacyRequest, request_id)
    if request is None or request.export_json is None:
        return None
    audit.record(actor, "privacy_request.export_read", f"privacy_request:{request.id}")
    db.session.commit()
    return request.export_json


def _email_columns() -> list[Any]:
    """The columns holding the addresses of the processings reached by e-mail."""
    declared = {c for key in BY_EMAIL for c in BY_KEY[key].columns}
    return [column for table in db.metadata.sorted_tables for column in table.columns
            if column.info.get("data_category") == EMAIL_CATEGORY
            and f"{table.name}.{column.name}" in declared]


def _plain(row: Any) -> dict[str, Any]:
    return {k: (v.isoformat() + "Z" if isinstance(v, datetime) else v)
            for k, v in row.items() if k not in _INTERNAL}


def gather(email: str, *, now: datetime) -> dict[str, Any]:
    """Everything held about an address across the tables that hold addresses."""
    data: dict[str, Any] = {"email": email, "generated_at": now.isoformat() + "Z"}
    for column in _email_columns():
        table = column.table
        rows = db.session.execute(select(table).where(func.lower(column) == email)).mappings()
        entries = [_plain(row) for row in rows]
        data[table.name] = entries
        keys = [e[pk.name] for e in entries for pk in table.primary_key.columns]
        # Rows elsewhere that point at these ones (e.g. the copies of campaigns sent).
        for child in db.metadata.sorted_tables:
            for fk in child.foreign_keys:
                if fk.column.table is table and keys:
                    linked = db.session.execute(select(child).where(fk.parent.in_(keys)))
                    data.setdefault(child.name, []).extend(
                        _plain(row) for row in linked.mappings())
    listed = db.session.get(OppositionEntry, opposition_hmac(email))
    data["opposition_list"] = ({"listed": True, "since": listed.created_at.isoformat() + "Z",
                                "source": listed.source} if listed else {"listed": False})
    data["requests"] = [
        {"kind": r.kind, "status": r.status, "made_at": r.created_at.isoformat() + "Z"}
        for r in db.session.scalars(select(PrivacyRequest).where(
            PrivacyRequest.email == email, PrivacyRequest.status != rules.UNVERIFIED))]
    return data


def erase(email: str) -> dict[str, int]:
    """Delete every row holding the address (dependants first); rows removed per table."""
    counts: dict[str, int] = {}
    columns = sorted(_email_columns(), key=lambda c: -db.metadata.sorted_tables.index(c.table))
    for column in columns:
        for name, n in delete_rows(column.table, func.lower(column) == email).items():
            counts[name] = counts.get(name, 0) + n
    return counts


def approve(actor: User, request_id: int, *, now: datetime, note: str = "") -> PrivacyRequest:
    """Execute a verified request and tell the requester; rectifications need a note."""
    require(actor, "data_subject_requests")
    request = _pending(request_id)
    email, details = request.email or "", {"kind": request.kind}
    if request.kind == rules.RECTIFICATION and not note.strip():
        raise RequestError("Say what was corrected.")
    link = None
    if request.kind == rules.ACCESS:
        request.export_json = json.dumps(gather(email, now=now), indent=2, ensure_ascii=False)
        request.export_expires_at = EXPORT_PERIOD.after(now)
        token = _serializer(_EXPORT_SALT).dumps(request.public_id)
        link = _public_url(f"/privacy/requests/{request.public_id}/export?token={token}")
    elif request.kind == rules.ERASURE:
        counts = erase(email)
        record = ErasureRecord(subject="email", request_id=request.id,
                               counts=audit.canonical(counts), created_at=now)
        db.session.add(record)
        details["counts"] = counts
    elif request.kind == rules.OBJECTION:
        details["was_subscribed"] = newsletter.end_marketing(email, source="objection",
                                                             now=now)
    request.status, request.decided_at, request.decided_by = rules.APPROVED, now, actor.id
    request.reason = note.strip() or None
    audit.record(actor, "privacy_request.approved", f"privacy_request:{request.id}", details)
    db.session.commit()
    _tell(request, link=link)
    return request


def deny(actor: User, request_id: int, reason: str, *, now: datetime) -> PrivacyRequest:
    """Refuse a verified request; the reason is mandatory and sent to the requester."""
    require(actor, "data_subject_requests")
    if not reason.strip():
        raise RequestError("A refusal needs its reason.")
    request = _pending(request_id)
    request.status, request.decided_at, request.decided_by = rules.DENIED, now, actor.id
    request.reason = reason.strip()
    audit.record(actor, "privacy_request.denied", f"privacy_request:{request.id}",
                 {"kind": request.kind})
    db.session.commit()
    _tell(request, link=None)
    return request


def _pending(request_id: int) -> PrivacyRequest:
    request = db.session.get(PrivacyRequest, request_id)
    if request is None or request.status != rules.PENDING:
        raise RequestError("This request is not waiting for a decision.")
    return request


def _tell(request: PrivacyRequest, *, link: str | None) -> None:
    """E-mail the outcome; the decision stands even if the mail fails (the DPO is told)."""
    assert request.email is not None
    subject = ("Amniotic: your request" if request.lang == "en"
               else "Amniotic : votre demande")
    try:
        _send(request.email, subject, "decision", request=request, link=link,
              days=EXPORT_PERIOD.days)
    except MailError as exc:
        raise RequestError(f"The decision is recorded but the e-mail failed: {exc}") from exc


def pending_count() -> int:
    return db.session.scalar(select(func.count()).select_from(PrivacyRequest)
                             .where(PrivacyRequest.status == rules.PENDING)) or 0
