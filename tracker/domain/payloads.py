"""Parse and validate the JSON bodies of the public endpoints into plain dataclasses.

Every failure raises PayloadError naming the field, so the response can say what was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tracker.domain.consent import HEX32, LANGS, METHODS, PURPOSES, Choices, method_of

EVENT_TYPES = ("pageview", "engagement")
MAX_URL = 2048
MAX_TITLE = 300
MAX_POLICY_VERSION = 32
# A day of visible time on one page is already implausible; more is a forged beacon.
MAX_ENGAGED_MS = 24 * 3600 * 1000


class PayloadError(ValueError):
    """A request body that cannot be accepted; `field` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    visitor_id: str | None
    choices: Choices
    policy_version: str
    lang: str
    method: str


@dataclass(frozen=True, slots=True)
class Beacon:
    type: str
    event_id: str | None
    visitor_id: str | None
    consent_id: str | None
    url: str
    referrer: str
    title: str
    pageview_id: str | None
    engaged_ms: int


def decode_json(body: bytes) -> dict[str, Any]:
    """Decode a UTF-8 JSON object."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError("body", "is not valid UTF-8 JSON (or is nested too deeply)") from exc
    if not isinstance(value, dict):
        raise PayloadError("body", "must be a JSON object")
    return value


def _optional_hex(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not HEX32.fullmatch(value):
        raise PayloadError(field, "must be 32 lowercase hexadecimal characters or null")
    return value


def _string(data: dict[str, Any], field: str, limit: int, *, required: bool = False) -> str:
    value = data.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise PayloadError(field, "must be a string")
    if len(value) > limit:
        raise PayloadError(field, f"must be at most {limit} characters")
    if "\x00" in value:
        raise PayloadError(field, "must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a JSON "\ud800" escape decodes to a lone surrogate
            raise PayloadError(field, "must not contain unpaired surrogates") from exc
    return value


def _choice(choices: dict[str, Any], purpose: str) -> bool:
    value = choices.get(purpose)
    if not isinstance(value, bool):
        raise PayloadError(f"choices.{purpose}", "must be true or false")
    return value


def parse_consent(data: dict[str, Any]) -> ConsentDecision:
    """Validate a POST /api/consent body."""
    raw_choices = data.get("choices")
    if not isinstance(raw_choices, dict):
        raise PayloadError("choices", "must be an object with analytics, location, marketing")
    unknown = set(raw_choices) - set(PURPOSES)
    if unknown:
        raise PayloadError("choices", f"unknown purpose {sorted(unknown)[0]!r}")
    choices = Choices(**{p: _choice(raw_choices, p) for p in PURPOSES})
    lang = data.get("lang")
    if lang not in LANGS:
        raise PayloadError("lang", "must be 'fr' or 'en'")
    method = data.get("method")
    if method is None:
        method = method_of(choices)
    if method not in METHODS:
        raise PayloadError("method", f"must be one of {', '.join(METHODS)}")
    return ConsentDecision(
        visitor_id=_optional_hex(data, "visitor_id"),
        choices=choices,
        policy_version=_string(data, "policy_version", MAX_POLICY_VERSION, required=True),
        lang=lang,
        method=method,
    )


def parse_beacon(data: dict[str, Any]) -> Beacon:
    """Validate a POST /api/collect body."""
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        raise PayloadError("type", f"must be one of {', '.join(EVENT_TYPES)}")
    engaged_ms = 0
    pageview_id = None
    if kind == "engagement":
        engaged_ms = data.get("engaged_ms")
        if not isinstance(engaged_ms, int) or isinstance(engaged_ms, bool):
            raise PayloadError("engaged_ms", "must be an integer number of milliseconds")
        if not 0 <= engaged_ms <= MAX_ENGAGED_MS:
            raise PayloadError("engaged_ms", f"must be between 0 and {MAX_ENGAGED_MS}")
        pageview_id = _optional_hex(data, "pageview_id")
        if pageview_id is None:
            raise PayloadError("pageview_id", "is required on engagement events")
    url = _string(data, "url", MAX_URL, required=True)
    if not url.startswith(("http://", "https://")):
        raise PayloadError("url", "must be an absolute http(s) URL")
    return Beacon(
        type=kind,
        event_id=_optional_hex(data, "event_id"),
        visitor_id=_optional_hex(data, "visitor_id"),
        consent_id=_optional_hex(data, "consent_id"),
        url=url,
        referrer=_string(data, "referrer", MAX_URL),
        title=_string(data, "title", MAX_TITLE),
        pageview_id=pageview_id,
        engaged_ms=engaged_ms,
    )
