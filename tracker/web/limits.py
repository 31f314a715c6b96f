"""Abuse limits of the HTTP layer: rate limits of the collector's public API (consents and
beacons) per client, the body cap of the public forms, and the bounds of ids in URLs.

The other areas declare their rate limits beside their views with Flask-Limiter: sign-in in
tracker.web.auth, the public forms in tracker.web.forms, "see/delete my data" and rights
requests in tracker.web.privacy. The collector's two endpoints are counted here instead, with
the `limits` library Flask-Limiter is built on and in the same storage
(TRACKER_RATELIMIT_STORAGE). Measured with `python -m bench --suite ingest` on 2 cores:
Flask-Limiter's per-request work (matching every declared limit, exemptions, X-RateLimit
headers) and the `limits` memory store's expiry thread added 130-150 us of server CPU to each
beacon and cost 14% of the collector's throughput; this check adds about 25 us (3%), with no
throughput difference beyond the noise.

A client is tracker.extensions.client_address (X-Forwarded-For counts only as far as
TRACKER_TRUSTED_PROXIES says), an IPv6 one counted per /64 network. Body sizes are capped by
TRACKER_MAX_BODY_BYTES on the public API, FORM_BODY_BYTES on the public forms and sign-in;
field lengths by tracker.domain.payloads and the forms' validators.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import threading
import time
from typing import Any

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import STRATEGIES, RateLimiter
from werkzeug.exceptions import TooManyRequests
from werkzeug.routing import IntegerConverter

from tracker.extensions import client_address, limiter

log = logging.getLogger("tracker.limits")

# Endpoint -> the setting holding its limit; each endpoint counts on its own.
API_LIMITS = {"api.consent": "TRACKER_CONSENT_RATE_LIMIT",
              "api.collect": "TRACKER_COLLECT_RATE_LIMIT"}
KEY = "tracker.api_limiter"
IPV6_PREFIX = 64
# Public forms and sign-in carry what a person types: bodies past this are refused (413)
# before they are read. (Staff pages keep the app-wide MAX_CONTENT_LENGTH: campaigns are long.)
FORM_BODY_BYTES = 64 * 1024
FORM_BLUEPRINTS = frozenset({"forms", "privacy", "auth"})
# Row ids are 32-bit integers on PostgreSQL.
MAX_ID = 2**31 - 1


class DatabaseId(IntegerConverter):
    """`<int:...>` in a URL names a row: a number no id can have is a 404, not a database
    error (`/staff/campaigns/9223372036854775808` overflowed SQLite's and PostgreSQL's
    integers: an HTTP 500)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def client_key(ip: str) -> str:
    """Whom a request counts against: its IPv4 address, or the /64 network of an IPv6 one
    (a single IPv6 subscriber holds a whole /64 and could otherwise rotate addresses)."""
    if ":" not in ip:
        return ip
    try:
        network = ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False)
    except ValueError:
        return ip
    return str(network)


@functools.lru_cache(maxsize=32)
def parse_limit(text: str) -> tuple[RateLimitItem, ...]:
    """`600 per minute;20 per second` as rate-limit items (parsed once per value)."""
    return tuple(parse_many(text))


class LocalWindows:
    """Fixed windows counted in this process's memory (`memory://`): one dict per limit and
    window, dropped whole when the next window starts. The `limits` library's memory store
    starts a thread every 10 ms to scan every key for expiry, which cost the collector more
    than the counting itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, dict[str, int]]] = {}

    def hit(self, item: RateLimitItem, *identifiers: str) -> float | None:
        """Count one request; None when allowed, else the seconds until the window ends."""
        period = item.get_expiry()
        now = time.time()
        window = int(now // period)
        key = "/".join(identifiers)
        with self._lock:
            current, counts = self._windows.get(str(item), (None, None))
            if current != window or counts is None:
                counts = {}
                self._windows[str(item)] = (window, counts)
            counts[key] = count = counts.get(key, 0) + 1
        return None if count <= item.amount else (window + 1) * period - now


class SharedWindows:
    """Windows in a store several processes share (`redis://...`), through `limits`."""

    def __init__(self, storage_uri: str, strategy: str) -> None:
        self.strategy: RateLimiter = STRATEGIES[strategy](storage_from_string(storage_uri))

    def hit(self, item: RateLimitItem, *identifiers: str) -> float | None:
        if self.strategy.hit(item, *identifiers):
            return None
        return self.strategy.get_window_stats(item, *identifiers).reset_time - time.time()


class ApiLimiter:
    """The public API's limits per endpoint and client IP."""

    def __init__(self, storage_uri: str, strategy: str = "fixed-window") -> None:
        self.windows: LocalWindows | SharedWindows = (
            LocalWindows() if storage_uri.startswith("memory://") and strategy == "fixed-window"
            else SharedWindows(storage_uri, strategy))

    def check(self, endpoint: str, client: str, limit: str) -> None:
        """Count one request; raise TooManyRequests (429, Retry-After) past the limit."""
        for item in parse_limit(limit):
            try:
                wait = self.windows.hit(item, endpoint, client)
            except Exception as exc:  # e.g. Redis unreachable: a beacon outranks a counter
                log.warning("rate-limit storage failed (%s): request let through",
                            exc.__class__.__name__)
                return
            if wait is not None:
                raise TooManyRequests(f"more than {item} from this address",
                                      retry_after=max(1, math.ceil(wait)))


def init_app(app: Flask) -> None:
    cfg = app.config
    app.extensions[KEY] = ApiLimiter(cfg["RATELIMIT_STORAGE_URI"],
                                     cfg.get("RATELIMIT_STRATEGY") or "fixed-window")
    # Counted here only: no default limit of Flask-Limiter applies to them on top.
    for endpoint in API_LIMITS:
        limiter.exempt(app.view_functions[endpoint])

    def cap_form_bodies() -> None:
        if request.blueprint in FORM_BLUEPRINTS:
            request.max_content_length = FORM_BODY_BYTES

    # First of all hooks: the CSRF check reads the form of every POST.
    app.before_request_funcs.setdefault(None, []).insert(0, cap_form_bodies)

    @app.before_request
    def limit_public_api() -> None:
        setting = API_LIMITS.get(request.endpoint or "")
        if setting is None or request.method != "POST":
            return  # preflights (OPTIONS) write nothing and are cached by browsers
        current_app.extensions[KEY].check(request.endpoint, client_key(client_address()),
                                          current_app.config[setting])
