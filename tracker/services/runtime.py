"""The long-lived objects of one process (readers, caches, spool), bound to the app."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app

from tracker.enrich import GeoIP, ReverseDNS
from tracker.services.banner import Banner
from tracker.services.ingest import Ingest
from tracker.services.spool import Spool

log = logging.getLogger("tracker.ingest")
KEY = "tracker"


def init_app(app: Flask) -> None:
    """Create this process's ingest service and, unless disabled, its drainer thread."""
    cfg = app.config
    static = Path(app.static_folder or "")
    ingest = Ingest(
        spool=Spool(cfg["TRACKER_SPOOL_DIR"]),
        geoip=GeoIP(cfg["TRACKER_GEOIP_ASN_DB"], cfg["TRACKER_GEOIP_CITY_DB"]),
        rdns=ReverseDNS(cfg["TRACKER_DNS_SERVERS"] or None, timeout=cfg["TRACKER_DNS_TIMEOUT"]),
        site_origins=tuple(cfg["TRACKER_SITE_ORIGINS"]),
        policy_version=cfg["TRACKER_POLICY_VERSION"],
        visit_timeout=timedelta(minutes=cfg["TRACKER_VISIT_TIMEOUT_MINUTES"]),
    )
    app.extensions[KEY] = {"ingest": ingest, "banner": Banner.load(static / "consent-banner.js",
                                                                   cfg["TRACKER_POLICY_VERSION"])}
    if cfg["TRACKER_INGEST_IN_PROCESS"] and not app.testing:
        start_drainer(app, cfg["TRACKER_INGEST_INTERVAL"])


def ingest() -> Ingest:
    return current_app.extensions[KEY]["ingest"]


def banner() -> Banner:
    return current_app.extensions[KEY]["banner"]


def start_drainer(app: Flask, interval: float) -> threading.Thread:
    """Drain the spool every `interval` seconds in a daemon thread of this process."""

    def loop() -> None:
        service: Ingest = app.extensions[KEY]["ingest"]
        while True:
            time.sleep(interval)
            try:
                with app.app_context():
                    service.drain()
            except Exception:
                # The events stay in the spool and are retried on the next round.
                log.exception("draining the spool failed; will retry")

    thread = threading.Thread(target=loop, name="tracker-drainer", daemon=True)
    thread.start()
    return thread
