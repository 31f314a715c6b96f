"""Small actions the tests repeat: deciding in the banner, sending beacons."""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask.testing import FlaskClient

SITE = "https://amniotic.studio"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
# In the MaxMind test databases: AS29518 Bredband2 AB, Linköping SE.
KNOWN_IP = "89.160.20.112"


def hex32() -> str:
    return secrets.token_hex(16)


def decide(client: FlaskClient, *, analytics: bool = True, location: bool = False,
           marketing: bool = False, visitor_id: str | None = None,
           policy_version: str = "2026-11-01", origin: str | None = SITE) -> dict[str, Any]:
    """POST a banner decision and return the response body (plus the visitor id sent)."""
    if analytics and visitor_id is None:
        visitor_id = hex32()
    response = client.post("/api/consent", json={
        "visitor_id": visitor_id,
        "choices": {"analytics": analytics, "location": location, "marketing": marketing},
        "policy_version": policy_version, "lang": "fr",
    }, headers={"Origin": origin} if origin else {})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def beacon(client: FlaskClient, consent: dict[str, Any] | None, *, path: str = "/",
           ip: str = KNOWN_IP, user_agent: str = FIREFOX, **fields: Any):
    """Send a pageview (or other event via fields) as navigator.sendBeacon does."""
    body = {"type": "pageview", "event_id": hex32(), "url": SITE + path, "referrer": "",
            "title": "Amniotic"}
    if consent is not None:
        body.update(visitor_id=consent["visitor_id"], consent_id=consent["consent_id"])
    body.update(fields)
    return client.post("/api/collect", data=json.dumps(body), content_type="text/plain",
                       headers={"User-Agent": user_agent, "Origin": SITE},
                       environ_base={"REMOTE_ADDR": ip})


PASSWORD = "correct horse battery staple"


def make_user(email: str, role: str) -> Any:
    """Create an account; admin and dpo get an enrolled authenticator (their second factor)."""
    from tracker.clock import utcnow
    from tracker.domain import totp
    from tracker.extensions import db
    from tracker.services import staff

    user = staff.create_user(email, PASSWORD, role, now=utcnow())
    if staff.needs_second_factor(user):
        user.totp_secret = totp.new_secret()
        db.session.commit()
    return user


def csrf_token(client: FlaskClient, path: str) -> str:
    import re

    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, f"the form at {path} carries a CSRF token"
    return token.group(1)


def next_totp_code(email: str) -> str:
    """A code the account has not used yet (each code is accepted once)."""
    import time

    from sqlalchemy import select

    from tracker.domain import totp
    from tracker.extensions import db
    from tracker.models import User

    user = db.session.scalar(select(User).filter_by(email=email))
    db.session.refresh(user)
    step = max(totp.step_of(time.time()) - totp.WINDOW, user.totp_last_step + 1)
    assert step <= totp.step_of(time.time()) + totp.WINDOW, "signed in too often this minute"
    return totp.code_at(user.totp_secret, step)


def login(client: FlaskClient, email: str, password: str = PASSWORD):
    """Sign in through the real forms, CSRF tokens (and the second factor) included."""
    response = client.post("/staff/login", data={
        "email": email, "password": password, "csrf_token": csrf_token(client, "/staff/login")})
    if response.status_code == 302 and response.headers["Location"].endswith("/staff/2fa"):
        response = client.post("/staff/2fa", data={
            "code": next_totp_code(email), "csrf_token": csrf_token(client, "/staff/2fa")})
    return response
