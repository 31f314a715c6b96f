"""The public API the banner talks to: consent decisions and beacons."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from tracker.clock import utcnow
from tracker.domain.consent import VISITOR_COOKIE_LIFETIME, Choices
from tracker.domain.payloads import PayloadError, decode_json, parse_beacon, parse_consent
from tracker.enrich import client_ip
from tracker.models import Consent
from tracker.services import consent as consents
from tracker.services import runtime
from tracker.services.ingest import ConsentRequired, ConsentStoreUnavailable

bp = Blueprint("api", __name__, url_prefix="/api")

CONSENT_COOKIE = "amn_consent"
VISITOR_COOKIE = "amn_vid"
# sendBeacon can only send text/plain without a CORS preflight.
JSON_TYPES = ("application/json", "text/plain")
# When the database is down, how long a client should wait before sending a beacon again.
RETRY_AFTER_SECONDS = 5


@bp.before_request
def limit_body() -> None:
    request.max_content_length = current_app.config["TRACKER_MAX_BODY_BYTES"]


# Only a preflight (OPTIONS) answer needs these; every beacon's answer stays small.
PREFLIGHT_HEADERS = (("Access-Control-Allow-Methods", "POST, OPTIONS"),
                     ("Access-Control-Allow-Headers", "Content-Type"),
                     ("Access-Control-Max-Age", "86400"))


@bp.after_request
def cors(response: Response) -> Response:
    headers = response.headers
    origin = request.headers.get("Origin")
    if origin and origin in current_app.config["TRACKER_SITE_ORIGINS"]:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
        if request.method == "OPTIONS":
            headers.extend(PREFLIGHT_HEADERS)
    # Plain header edits: `response.vary` parses and rebuilds the header on every request.
    vary = headers.get("Vary")
    if not vary:
        headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        headers["Vary"] = f"{vary}, Origin"
    return response


@bp.errorhandler(PayloadError)
def bad_payload(exc: PayloadError) -> tuple[Response, int]:
    return jsonify(error="invalid_payload", field=exc.field, reason=exc.message), 422


def _json_body() -> dict[str, Any]:
    # The Content-Type's media type without parameters (what request.mimetype parses).
    content_type = request.environ.get("CONTENT_TYPE", "")
    mimetype = content_type.partition(";")[0].strip().lower() or "text/plain"
    if mimetype not in JSON_TYPES:
        raise UnsupportedMediaType(f"send application/json or text/plain, not {mimetype}")
    body = request.get_data(cache=False)
    # Werkzeug stops reading a chunked body (no Content-Length) at the cap without an error.
    if request.content_length is None and len(body) >= (request.max_content_length or 0) > 0:
        raise RequestEntityTooLarge("the body is larger than this endpoint accepts")
    return decode_json(body)


@bp.post("/consent")
def consent() -> tuple[Response, int]:
    decision = parse_consent(_json_body())
    now = utcnow()
    banner_sha256 = runtime.banner().archive(now)
    record = consents.record_decision(decision, banner_sha256=banner_sha256, now=now)
    response = jsonify(consent_id=record.id, expires_at=record.expires_at.isoformat() + "Z",
                       visitor_id=record.visitor_id)
    if _shares_site():
        _set_cookies(response, record)
    return response, 201


@bp.post("/collect")
def collect() -> tuple[Response, int]:
    beacon = parse_beacon(_json_body())
    cfg = current_app.config
    ip = client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"),
                   cfg["TRACKER_TRUSTED_PROXIES"])
    try:
        event_id = runtime.ingest().accept(
            beacon, ip=ip, user_agent=request.headers.get("User-Agent", ""), now=utcnow())
    except ConsentRequired as exc:
        return jsonify(error="consent_required", reason=str(exc)), 403
    except ConsentStoreUnavailable as exc:
        # Nothing was written: without the consent we may not even spool the IP address.
        response = jsonify(error="unavailable", reason=str(exc))
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response, 503
    # Event ids are hex, so the body needs no JSON encoder (one per beacon adds up).
    return Response(f'{{"event_id":"{event_id}"}}\n', 202, mimetype="application/json"), 202


def _shares_site() -> bool:
    """Cookies set by the collector are first-party only when it is on the site's domain."""
    if current_app.config["TRACKER_COOKIE_DOMAIN"]:
        return True
    origin = request.headers.get("Origin")
    return origin is None or origin == request.host_url.rstrip("/")


def _set_cookies(response: Response, record: Consent) -> None:
    cfg = current_app.config
    options = {"domain": cfg["TRACKER_COOKIE_DOMAIN"], "secure": cfg["TRACKER_SECURE_COOKIES"],
               "samesite": "Lax", "path": "/"}
    flags = Choices(record.analytics, record.location, record.marketing).flags
    issued = int(record.created_at.replace(tzinfo=UTC).timestamp())
    value = f"{record.id}|{record.policy_version}|{flags}|{issued}"
    lifetime = record.expires_at - record.created_at
    response.set_cookie(CONSENT_COOKIE, value, max_age=lifetime, **options)
    if record.visitor_id:
        response.set_cookie(VISITOR_COOKIE, record.visitor_id, max_age=VISITOR_COOKIE_LIFETIME,
                            **options)
    else:
        response.delete_cookie(VISITOR_COOKIE, **options)
