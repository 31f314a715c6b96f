"""Security headers, request ids, and request logs without personal data."""

from __future__ import annotations

import json
import logging

from tests.helpers import FIREFOX, KNOWN_IP, beacon, decide


def test_html_pages_carry_a_strict_policy(client):
    response = client.get("/staff/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert response.headers["Referrer-Policy"]


def test_errors_carry_the_request_id(client):
    response = client.post("/api/collect", data=b"{", content_type="text/plain")
    assert response.status_code == 422
    request_id = response.headers["X-Request-ID"]
    assert len(request_id) == 16
    missing = client.get("/api/nothing-here")
    assert missing.get_json()["request_id"] == missing.headers["X-Request-ID"]


def test_request_log_is_json_without_personal_data(client, caplog):
    caplog.set_level(logging.INFO, logger="tracker.request")
    consent = decide(client)
    beacon(client, consent, path="/projets/?email=someone@example.org")
    beacon(client, {"visitor_id": "f" * 32, "consent_id": None})
    lines = [r for r in caplog.records if r.name == "tracker.request"]
    assert len(lines) == 3
    from tracker.web.middleware import JsonLineFormatter

    for record in lines:
        text = JsonLineFormatter().format(record)
        entry = json.loads(text)
        assert entry["route"] in ("/api/consent", "/api/collect")
        for secret in (KNOWN_IP, FIREFOX, consent["visitor_id"], "f" * 32, "someone@"):
            assert secret not in text
