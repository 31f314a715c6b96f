"""`POST /api/collect` answered in front of Flask, as a plain WSGI callable.

Beacons arrive at the rate of the studio's traffic; every other request (consent decisions,
staff pages, forms) is rare. Flask's request context and the app-wide hooks a beacon has no
use for (cookie session, CSRF, Flask-Limiter, staff session timeouts) cost three times the
collect work itself (`python -m bench --suite breakdown`), so beacons skip them. The contract
is the one published in /api/openapi.json, kept by the same tests: the public API's rate
limit, body cap and media types, the same error bodies, CORS, security headers, request id
and request log line. Other methods on the path (the CORS preflight, a GET) go on to Flask.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.wsgi import get_content_length, get_input_stream

from tracker.clock import utcnow
from tracker.domain.payloads import PayloadError, decode_json, parse_beacon
from tracker.enrich import client_ip
from tracker.services import runtime
from tracker.services.ingest import ConsentRequired, ConsentStoreUnavailable, describe
from tracker.web import limits
from tracker.web.middleware import SECURITY_HEADERS, log_request

log = logging.getLogger("tracker.collector")

PATH = "/api/collect"
ENDPOINT = "api.collect"
# sendBeacon can only send text/plain without a CORS preflight.
JSON_TYPES = ("application/json", "text/plain")
# When the database is down, how long a client should wait before sending a beacon again.
RETRY_AFTER_SECONDS = 5
STATUS_LINES = {202: "202 ACCEPTED", 403: "403 FORBIDDEN", 413: "413 REQUEST ENTITY TOO LARGE",
                415: "415 UNSUPPORTED MEDIA TYPE", 422: "422 UNPROCESSABLE ENTITY",
                429: "429 TOO MANY REQUESTS", 500: "500 INTERNAL SERVER ERROR",
                503: "503 SERVICE UNAVAILABLE"}
_COMMON_HEADERS = [("Content-Type", "application/json"), ("Vary", "Origin"),
                   *SECURITY_HEADERS.items()]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def read_json(environ: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """The request's JSON object body; 415, 413 or PayloadError (422) otherwise."""
    content_type = environ.get("CONTENT_TYPE", "")
    mimetype = content_type.partition(";")[0].strip().lower() or "text/plain"
    if mimetype not in JSON_TYPES:
        raise UnsupportedMediaType(f"send application/json or text/plain, not {mimetype}")
    body = get_input_stream(environ, max_content_length=max_bytes).read()
    # A chunked body (no Content-Length) is cut at the cap by the stream, without an error.
    if len(body) >= max_bytes and get_content_length(environ) is None:
        raise RequestEntityTooLarge("the body is larger than this endpoint accepts")
    return decode_json(body)


class CollectorFront:
    """WSGI middleware: beacons are answered here, everything else by `app`."""

    def __init__(self, app: Flask, wrapped: WSGIApp) -> None:
        self.wrapped = wrapped
        self.config = app.config
        self.ingest = app.extensions[runtime.KEY]["ingest"]
        self.limiter: limits.ApiLimiter = app.extensions[limits.KEY]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wrapped(environ, start_response)
        started = time.perf_counter()
        request_id = environ.get("HTTP_X_REQUEST_ID", "")[:64] or secrets.token_hex(8)
        status, body, extra = self.collect(environ, request_id)
        headers = [*_COMMON_HEADERS, ("Content-Length", str(len(body))),
                   ("X-Request-ID", request_id), *extra]
        origin = environ.get("HTTP_ORIGIN")
        if origin and origin in self.config["TRACKER_SITE_ORIGINS"]:
            headers += [("Access-Control-Allow-Origin", origin),
                        ("Access-Control-Allow-Credentials", "true")]
        start_response(STATUS_LINES[status], headers)
        log_request(request_id, "POST", PATH, ENDPOINT, status, started)
        return [body]

    def collect(self, environ: dict[str, Any], request_id: str
                ) -> tuple[int, bytes, list[tuple[str, str]]]:
        """Status, body and extra headers of the answer to one beacon."""
        cfg = self.config
        ip = client_ip(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"),
                       cfg["TRACKER_TRUSTED_PROXIES"])
        try:
            self.limiter.check(ENDPOINT, limits.client_key(ip or "unknown"),
                               cfg["TRACKER_COLLECT_RATE_LIMIT"])
            beacon = parse_beacon(read_json(environ, cfg["TRACKER_MAX_BODY_BYTES"]))
            event_id = self.ingest.accept(beacon, ip=ip, user_agent=environ.get(
                "HTTP_USER_AGENT", ""), now=utcnow())
        except PayloadError as exc:
            return _json(422, error="invalid_payload", field=exc.field, reason=exc.message)
        except ConsentRequired as exc:
            return _json(403, error="consent_required", reason=str(exc))
        except ConsentStoreUnavailable as exc:
            # Nothing was written: without the consent we may not even spool the IP address.
            return _json(503, [("Retry-After", str(RETRY_AFTER_SECONDS))],
                         error="unavailable", reason=str(exc))
        except HTTPException as exc:  # 413, 415, 429
            headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
            return _json(exc.code or 400, headers, error=exc.name.lower().replace(" ", "_"),
                         reason=exc.description, request_id=request_id)
        except Exception as exc:
            # Where it failed, not the message: it may quote the beacon (personal data).
            log.error("a beacon failed (request %s): %s\n%s", request_id, describe(exc),
                      "".join(traceback.format_tb(exc.__traceback__)))
            return _json(500, error="internal_server_error", request_id=request_id,
                         reason="the beacon could not be handled; it was not recorded")
        # Event ids are hex: the body needs no JSON encoder (one per beacon adds up).
        return 202, f'{{"event_id":"{event_id}"}}\n'.encode(), []


def _json(status: int, headers: list[tuple[str, str]] | None = None, **fields: Any
          ) -> tuple[int, bytes, list[tuple[str, str]]]:
    return status, json.dumps(fields).encode() + b"\n", headers or []


def init_app(app: Flask) -> None:
    app.wsgi_app = CollectorFront(app, app.wsgi_app)  # type: ignore[method-assign]
