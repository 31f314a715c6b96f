"""Where a beacon's CPU goes: the collector's WSGI call, its parts, and the drain.

In-process and single-threaded, timed with the thread's CPU clock (not the wall clock), so
that other processes on the machine barely move the figures. The whole call (b) goes through
tracker.web.collector in front of Flask; each part of it is then timed alone on the same
beacons, and the drain (enrichment, sessionization, storage) per event.
"""

from __future__ import annotations

import io
import json
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import traffic
from bench.harness import Figure
from bench.ingest import GEOIP, prepare_database


class _Beacons:
    def __init__(self, people: list[traffic.Visitor], seed: int = 6) -> None:
        self.people = people
        self.pages = traffic.pages()
        self.rng = random.Random(seed)

    def environ(self) -> dict[str, Any]:
        person = self.rng.choice(self.people)
        path, title = self.rng.choice(self.pages)
        body = json.dumps({"type": "pageview", "event_id": secrets.token_hex(16),
                           "visitor_id": person.visitor_id, "consent_id": person.consent_id,
                           "url": traffic.SITE + path, "referrer": "", "title": title}).encode()
        return {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/collect", "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
                "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr, "wsgi.multithread": False,
                "wsgi.multiprocess": True, "wsgi.run_once": False,
                "CONTENT_TYPE": "text/plain;charset=UTF-8", "CONTENT_LENGTH": str(len(body)),
                "HTTP_USER_AGENT": traffic.AGENTS[person.agent - 1],
                "HTTP_X_FORWARDED_FOR": person.ip, "HTTP_ORIGIN": traffic.SITE}


def _cpu_per_call(app: Callable[..., Any], beacons: _Beacons, count: int,
                  repeats: int) -> float:
    """Least thread CPU seconds per request over `repeats` runs of `count` requests."""

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        if status[:1] != "2":
            raise RuntimeError(f"unexpected answer {status}")

    best = float("inf")
    for _ in range(repeats):
        environs = [beacons.environ() for _ in range(count)]
        started = time.thread_time()
        for environ in environs:
            for _chunk in app(environ, start_response):
                pass
        best = min(best, (time.thread_time() - started) / count)
    return best


@contextmanager
def _collector(workdir: Path, people: list[traffic.Visitor]) -> Iterator[Any]:
    url = f"sqlite:///{workdir / 'tracker.sqlite3'}"
    prepare_database(url, workdir / "spool", people)
    from tracker import create_app

    app = create_app({
        "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
        "TRACKER_SPOOL_DIR": str(workdir / "spool"), "TRACKER_SITE_ORIGINS": [traffic.SITE],
        "TRACKER_TRUSTED_PROXIES": 1, "TRACKER_INGEST_IN_PROCESS": False,
        # Counted as usual, never refused: thousands of requests per second come from here.
        "TRACKER_COLLECT_RATE_LIMIT": "1000000 per minute",
        "TRACKER_GEOIP_ASN_DB": str(GEOIP / "GeoLite2-ASN-Test.mmdb"),
        "TRACKER_GEOIP_CITY_DB": str(GEOIP / "GeoIP2-City-Test.mmdb"),
        # Reverse DNS is measured as no answer at all (cached failures): no network here.
        "TRACKER_DNS_SERVERS": ["127.0.0.1:9"], "TRACKER_DNS_TIMEOUT": 0.01})
    import logging

    # The request log goes to a file, as under gunicorn.
    with open(workdir / "requests.log", "a") as sink:
        handlers = logging.getLogger("tracker.request").handlers
        streams = [(h, getattr(h, "stream", None)) for h in handlers]
        for handler, _ in streams:
            handler.stream = sink  # type: ignore[attr-defined]
        try:
            yield app
        finally:
            for handler, stream in streams:
                handler.stream = stream  # type: ignore[attr-defined]


def run(quick: bool) -> list[Figure]:
    """Time the bare app, the collector's whole call, its parts, and the drain."""
    count, repeats = (500, 2) if quick else (3000, 5)
    workdir = Path(tempfile.mkdtemp(prefix="tracker-breakdown-"))
    try:
        # Enough visitors (each its own address) to stay under the per-address rate limit.
        people = traffic.visitors(3000)
        beacons = _Beacons(people)
        from bench.baseline_app import create_app as bare_app

        bare = _cpu_per_call(bare_app(), beacons, count, repeats)
        with _collector(workdir, people) as app:
            full = _cpu_per_call(app, beacons, count, repeats)
            parts = _parts(app, beacons, count, repeats)
            drain = _drain_cost(app, beacons, count)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures = [Figure("collector request CPU (b/a)", full / bare, "", None,
                      f"b {full * 1e6:.0f} us vs a {bare * 1e6:.0f} us per request (WSGI "
                      f"call only; gunicorn's own work comes on top of both)")]
    for label, cost in parts:
        figures.append(Figure(f"  {label}"[:34], cost / bare, "", None,
                              f"{cost * 1e6:.0f} us: {label}"))
    figures.append(Figure("drain CPU per event (vs a)", drain / bare, "", None,
                          f"{drain * 1e6:.0f} us per pageview (consent re-check, UA, GeoIP, "
                          f"visit, insert), off the request path"))
    return figures


def _parts(app: Any, beacons: _Beacons, count: int, repeats: int
           ) -> list[tuple[str, float]]:
    """Each step of tracker.web.collector, timed alone on fresh beacons."""
    from tracker.clock import utcnow
    from tracker.domain.payloads import decode_json, parse_beacon
    from tracker.services import runtime
    from tracker.web import limits
    from tracker.web.collector import read_json
    from tracker.web.middleware import log_request

    ingest = app.extensions[runtime.KEY]["ingest"]
    limiter = app.extensions[limits.KEY]
    environs = [beacons.environ() for _ in range(count)]
    parsed = [parse_beacon(decode_json(e["wsgi.input"].getvalue())) for e in environs]
    steps: list[tuple[str, Callable[[int], object]]] = [
        ("read and parse the body", lambda i: parse_beacon(read_json(
            {**environs[i], "wsgi.input": io.BytesIO(environs[i]["wsgi.input"].getvalue())},
            4096))),
        ("rate limit (per address)", lambda i: limiter.check(
            "api.collect", environs[i]["HTTP_X_FORWARDED_FOR"], "1000000 per minute")),
        ("consent lookup (SQLite)", lambda i: ingest.consents.lookup(parsed[i].consent_id)),
        ("accept: consent + spool append", lambda i: ingest.accept(
            parsed[i], ip="192.0.2.1", user_agent="bench", now=utcnow())),
        ("request log line", lambda i: log_request("0" * 16, "POST", "/api/collect",
                                                   "api.collect", 202, time.perf_counter())),
    ]
    timed = []
    for label, step in steps:
        best = float("inf")
        for _ in range(repeats):
            started = time.thread_time()
            for i in range(count):
                step(i)
            best = min(best, (time.thread_time() - started) / count)
        timed.append((label, best))
    return timed


def _drain_cost(app: Any, beacons: _Beacons, count: int) -> float:
    from tracker.services import runtime

    with app.app_context():
        ingest = runtime.ingest()
        # Throw away the beacons of the request timings: only fresh ones are timed here.
        ingest.spool.rotate()
        for path in Path(app.config["TRACKER_SPOOL_DIR"]).glob("*.jsonl"):
            path.unlink()
        for _ in range(count):
            environ = beacons.environ()
            with app.request_context(environ):
                from tracker.domain.payloads import decode_json, parse_beacon

                beacon = parse_beacon(decode_json(environ["wsgi.input"].getvalue()))
                from tracker.clock import utcnow

                ingest.accept(beacon, ip=environ["HTTP_X_FORWARDED_FOR"],
                              user_agent=environ["HTTP_USER_AGENT"], now=utcnow())
        started = time.thread_time()
        stored = ingest.drain()
        return (time.thread_time() - started) / max(stored, 1)

