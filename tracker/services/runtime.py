"""The long-lived objects of one process (readers, caches, spool), bound to the app."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from tracker.domain.reports import parse_section_rules
from tracker.domain.traffic_quality import spam_list
from tracker.enrich import GeoIP, ReverseDNS
from tracker.extensions import db
from tracker.services.banner import Banner
from tracker.services.consent import ConsentReader
from tracker.services.ingest import Ingest, describe
from tracker.services.spool import Spool

log = logging.getLogger("tracker.ingest")
KEY = "tracker"
# After a failed drain (database down), wait longer each time, up to this many seconds.
MAX_DRAIN_BACKOFF = 10.0
# SQLite waits this long (ms) for another writer (a drainer in another process) to finish.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def init_app(app: Flask) -> None:
    """Create this process's ingest service and, unless disabled, its drainer thread."""
    cfg = app.config
    static = Path(app.static_folder or "")
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgres_settings)
    ingest = Ingest(
        spool=Spool(cfg["TRACKER_SPOOL_DIR"]),
        geoip=GeoIP(cfg["TRACKER_GEOIP_ASN_DB"], cfg["TRACKER_GEOIP_CITY_DB"]),
        rdns=ReverseDNS(cfg["TRACKER_DNS_SERVERS"] or None, timeout=cfg["TRACKER_DNS_TIMEOUT"]),
        site_origins=tuple(cfg["TRACKER_SITE_ORIGINS"]),
        policy_version=cfg["TRACKER_POLICY_VERSION"],
        visit_timeout=timedelta(minutes=cfg["TRACKER_VISIT_TIMEOUT_MINUTES"]),
        consents=ConsentReader(engine),
        section_rules=parse_section_rules(cfg["TRACKER_SECTIONS"] or ""),
        spam_referrers=spam_list(cfg["TRACKER_SPAM_REFERRERS"]),
    )
    app.extensions[KEY] = {"ingest": ingest, "banner": Banner.load(static / "consent-banner.js",
                                                                   cfg["TRACKER_POLICY_VERSION"])}
    if app.testing:
        return
    if cfg["TRACKER_INGEST_IN_PROCESS"]:
        start_drainer(app, cfg["TRACKER_INGEST_INTERVAL"])
    else:
        start_rotator(ingest.spool, cfg["TRACKER_INGEST_INTERVAL"])


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the collector read consents while a drainer writes (neither waits), and
    NORMAL sync keeps a commit durable against a crash of the process, like the spool."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _postgres_settings(dbapi_connection: Any, _record: Any) -> None:
    """No JIT: our queries are short, and compiling one (a report with a correlated
    subquery: 0.4 s) took longer than running it (a few ms)."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET jit = off")
    dbapi_connection.commit()


def ingest() -> Ingest:
    return current_app.extensions[KEY]["ingest"]


def banner() -> Banner:
    return current_app.extensions[KEY]["banner"]


def drain_forever(app: Flask, interval: float, stop: threading.Event | None = None) -> None:
    """Drain the spool every `interval` seconds; back off while the database is down."""
    service: Ingest = app.extensions[KEY]["ingest"]
    stop = stop or threading.Event()
    delay = interval
    while not stop.wait(delay):
        try:
            with app.app_context():
                service.drain()
        except Exception as exc:
            # The events stay in the spool and are retried on the next round. A database
            # error is logged without its text's SQL parameters (personal data).
            if delay == interval and not isinstance(exc, DBAPIError):
                log.exception("draining the spool failed; will retry")
            else:
                log.warning("draining the spool failed (%s); retrying in %.1f s",
                            describe(exc), delay)
            delay = min(max(delay * 2, interval), MAX_DRAIN_BACKOFF)
        else:
            delay = interval
            refresh_rollups(app)


def refresh_rollups(app: Flask) -> None:
    """Bring the report rollups up to date (at most once a minute, within a small budget)."""
    from tracker.services import rollups

    try:
        with app.app_context():
            rollups.maybe_refresh()
    except Exception:
        # Reports fall back to raw rows for stale days, so a failed refresh costs speed only.
        log.exception("refreshing the report rollups failed; will retry")


def start_rotator(spool: Spool, interval: float) -> threading.Thread:
    """Hand this process's spool segment to the drainers every `interval` seconds.

    Only the writer may close its segment (it holds the segment's lock), so a web process
    whose events are drained elsewhere (`flask ingest`) still rotates its own.
    """

    def loop() -> None:
        while True:
            time.sleep(interval)
            try:
                spool.rotate()
            except OSError:
                log.exception("rotating the spool segment failed; will retry")

    thread = threading.Thread(target=loop, name="tracker-spool-rotator", daemon=True)
    thread.start()
    return thread


def start_drainer(app: Flask, interval: float) -> threading.Thread:
    """Drain the spool every `interval` seconds in a daemon thread of this process."""
    thread = threading.Thread(target=drain_forever, args=(app, interval),
                              name="tracker-drainer", daemon=True)
    thread.start()
    return thread
