"""Cross-cutting response work: security headers, request ids, structured request logs.

The request log is JSON lines and deliberately carries no IP address, user agent, visitor
id, query string or raw path (links carry tokens): only the matched route pattern.
"""

from __future__ import annotations

import json
import logging
import secrets
import time

from flask import Flask, Response, g, request

log = logging.getLogger("tracker.request")

# Scripts and styles only from our own origin: no inline code can run, so an injected
# payload that escapes escaping still cannot execute.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")
# The studio's pages embed the banner, which injects its own <style> element: inline styles
# are allowed there, scripts never.
SITE_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, ensure_ascii=False)


def init_app(app: Flask) -> None:
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLineFormatter())
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    @app.before_request
    def start_request() -> None:
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or secrets.token_hex(8)
        g.started = time.perf_counter()

    @app.after_request
    def finish_request(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", CSP)
        request_id = g.get("request_id", "")
        response.headers["X-Request-ID"] = request_id
        # The route pattern, not the path: paths may carry tokens (unsubscribe links).
        log_request(request_id, request.method,
                    request.url_rule.rule if request.url_rule else None, request.endpoint,
                    response.status_code, g.get("started", time.perf_counter()))
        return response


def log_request(request_id: str, method: str, route: str | None, endpoint: str | None,
                status: int, started: float) -> None:
    """One JSON line per request: what was asked and answered, nothing about who asked."""
    if log.isEnabledFor(logging.INFO):
        log.info("request", extra={"fields": {
            "request_id": request_id, "method": method, "route": route, "endpoint": endpoint,
            "status": status, "ms": round((time.perf_counter() - started) * 1000, 2)}})
