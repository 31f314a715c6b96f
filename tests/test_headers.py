"""Security headers, request ids, and request logs without personal data."""

from __future__ import annotations

import io
import json
import logging
import time

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


def test_request_lines_are_written_in_blocks_and_never_held_long():
    from tracker.web.middleware import BlockWriter, JsonLineFormatter

    stream = io.StringIO()
    writer = BlockWriter(stream, max_bytes=1000, max_delay=0.2)
    writer.setFormatter(JsonLineFormatter())

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("tracker.request", level, __file__, 0, message, (), None)

    writer.handle(record(logging.INFO, "first"))
    assert stream.getvalue() == ""  # held, to be written with others
    writer.handle(record(logging.WARNING, "second"))
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
        "first", "second"]  # a warning writes the block at once, in order

    writer.handle(record(logging.INFO, "third"))
    deadline = time.monotonic() + 5
    while "third" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "third" in stream.getvalue()  # written after max_delay with no other line

    for n in range(30):  # more than max_bytes: written without waiting
        writer.handle(record(logging.INFO, f"line {n:02}"))
    assert "line 10" in stream.getvalue()


def test_a_request_line_written_directly_is_the_formatted_record():
    from tracker.web import middleware

    fields = {"request_id": 'quote " and \\ and é', "method": "POST", "route": "/api/collect",
              "endpoint": None, "status": 202, "ms": 0.42}
    direct = json.loads(middleware._request_line(**fields))
    record = logging.LogRecord("tracker.request", logging.INFO, __file__, 0, "request", (),
                               None)
    record.fields = fields
    formatted = json.loads(middleware.JsonLineFormatter().format(record))
    assert direct.pop("time")[:16] == formatted.pop("time")[:16]
    assert direct == formatted


def test_the_request_log_writes_directly_only_when_it_is_ours_alone(client):
    from tracker.web.middleware import BlockWriter, _own_writer, log

    saved = log.handlers[:], log.propagate
    stream = io.StringIO()
    try:
        log.handlers[:] = [BlockWriter(stream)]
        log.propagate = False
        assert _own_writer() is log.handlers[0]
        consent = decide(client)
        beacon(client, consent)
        log.handlers[0].flush()
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [(e["route"], e["status"]) for e in lines] == [
            ("/api/consent", 201), ("/api/collect", 202)]
        assert KNOWN_IP not in stream.getvalue() and consent["visitor_id"] not in stream.getvalue()

        log.addHandler(logging.NullHandler())  # e.g. an operator's own handler
        assert _own_writer() is None
    finally:
        log.handlers[:], log.propagate = saved
