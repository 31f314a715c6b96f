"""The public API the banner talks to: consent decisions and beacons."""

from __future__ import annotations

from datetime import UTC
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import InternalServerError

from tracker.clock import utcnow
from tracker.domain.consent import VISITOR_COOKIE_LIFETIME, Choices
from tracker.domain.payloads import PayloadError, parse_consent
from tracker.models import Consent
from tracker.services import consent as consents
from tracker.services import runtime
from tracker.web.collector import read_json

bp = Blueprint("api", __name__, url_prefix="/api")

CONSENT_COOKIE = "amn_consent"
VISITOR_COOKIE = "amn_vid"


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


def json_body() -> dict[str, Any]:
    """The public API's JSON body (also the visitor self-service's, tracker.web.privacy)."""
    return read_json(request.environ, current_app.config["TRACKER_MAX_BODY_BYTES"])


@bp.post("/consent")
def consent() -> tuple[Response, int]:
    decision = parse_consent(json_body())
    now = utcnow()
    banner_sha256 = runtime.banner().archive(now)
    record = consents.record_decision(decision, banner_sha256=banner_sha256, now=now)
    response = jsonify(consent_id=record.id, expires_at=record.expires_at.isoformat() + "Z",
                       visitor_id=record.visitor_id)
    if shares_site():
        _set_cookies(response, record)
    return response, 201


@bp.post("/collect")
def collect() -> NoReturn:
    # Beacons are answered by tracker.web.collector in front of Flask and never get here:
    # the route gives Flask the CORS preflight (OPTIONS) and names the endpoint.
    raise InternalServerError("beacons are answered by tracker.web.collector")


def shares_site() -> bool:
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
