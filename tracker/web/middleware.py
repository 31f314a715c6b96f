"""Cross-cutting response work: security headers, request ids, structured request logs.

The request log is JSON lines and deliberately carries no IP address, user agent, visitor
id, query string or raw path (links carry tokens): only the matched route pattern.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import threading
import time
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import TextIO

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


class BlockWriter(logging.StreamHandler):
    """Writes log lines in blocks: one write(2) per block, not one per request.

    At thousands of beacons a second, a system call per line took a tenth of a web worker's
    time. A line waits at most `max_delay` seconds; a warning or an error writes the block at
    once, and so does a clean exit (logging.shutdown). A SIGKILL loses the last second of
    request lines, never an event (those are in the spool before the answer).
    """

    def __init__(self, stream: TextIO | None = None, max_bytes: int = 16384,
                 max_delay: float = 1.0) -> None:
        super().__init__(stream)
        self.max_bytes, self.max_delay = max_bytes, max_delay
        self._lines: list[str] = []
        self._size = 0
        self._timer: threading.Timer | None = None
        # A timer does not survive fork(): a child must start its own.
        os.register_at_fork(after_in_child=self._forget_timer)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record), urgent=record.levelno >= logging.WARNING)
        except Exception:
            self.handleError(record)

    def write_line(self, line: str, urgent: bool = False) -> None:
        """Add one formatted line (without its newline) to the block."""
        with self.lock:  # type: ignore[union-attr]
            self._lines.append(line + self.terminator)
            self._size += len(line) + 1
            if urgent or self._size >= self.max_bytes:
                self._write()
            elif self._timer is None:
                self._timer = threading.Timer(self.max_delay, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._timer = None
            self._write()

    def _write(self) -> None:
        if self._lines:
            lines, self._lines, self._size = self._lines, [], 0
            self.stream.write("".join(lines))
            self.stream.flush()

    def _forget_timer(self) -> None:
        self._timer = None


def init_app(app: Flask) -> None:
    if not log.handlers:
        handler = BlockWriter()
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
    if not log.isEnabledFor(logging.INFO):
        return
    ms = round((time.perf_counter() - started) * 1000, 2)
    writer = _own_writer()
    if writer is not None:
        writer.write_line(_request_line(request_id, method, route, endpoint, status, ms))
        return
    log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "request", (), None, extra={
        "fields": {"request_id": request_id, "method": method, "route": route,
                   "endpoint": endpoint, "status": status, "ms": ms}}))


def _own_writer() -> BlockWriter | None:
    """Our BlockWriter, when it is the request log's only destination (as init_app sets it).

    Then a request line is formatted directly, the way nginx writes its access log: through
    `logging` (a LogRecord, a dict, json.dumps) it cost a beacon's answer an eighth of its
    time under load. Any other configuration (another handler, a filter, pytest's capture)
    gets LogRecords as usual.
    """
    handlers = log.handlers
    if (len(handlers) == 1 and type(handlers[0]) is BlockWriter and not log.propagate
            and not log.filters and not handlers[0].filters
            and handlers[0].level <= logging.INFO):
        return handlers[0]
    return None


@functools.lru_cache(maxsize=1)
def _local_second(second: int) -> str:
    """A whole second as the formatter writes it, formatted once per second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))


def _request_line(request_id: str, method: str, route: str | None, endpoint: str | None,
                  status: int, ms: float) -> str:
    """The line JsonLineFormatter writes for a request record (tests/test_headers.py)."""
    now = time.time()
    second = int(now)
    return (f'{{"time": "{_local_second(second)},{int((now - second) * 1000):03d}", '
            f'"level": "INFO", "logger": "{log.name}", "message": "request", "request_id": '
            f'{_json_text(request_id)}, "method": {_json_text(method)}, "route": '
            f'{_json_text(route)}, "endpoint": {_json_text(endpoint)}, "status": {int(status)}, '
            f'"ms": {float(ms)!r}}}')


def _json_text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)
