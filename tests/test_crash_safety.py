"""Crash safety: a collector killed with SIGKILL mid-load, and PostgreSQL stopped mid-load.

Real gunicorn processes and a real PostgreSQL. Clients keep sending beacons (some of them
twice on purpose, with the same event id) through the fault; afterwards every beacon that
was answered 2xx is stored exactly once. Each test prints its tally (answered, duplicated,
stored, lost); run with `-s` to see it.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.helpers import (
    CollectorProcess,
    beacon_body,
    collector_env,
    hex32,
    migrated_database_with_consents,
)
from tracker.web.collector import RETRY_AFTER_SECONDS

VISITORS = 10
CLIENTS = 4


@dataclass
class Load:
    """Client threads sending beacons to a collector until stopped; what they were told."""

    collector: CollectorProcess
    consents: list[dict]
    duplicate_share: float = 0.15
    answers: Counter = field(default_factory=Counter)  # event id -> 2xx answers
    statuses: Counter = field(default_factory=Counter)
    retry_after: set = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            consent = rng.choice(self.consents)
            body = beacon_body(consent, event_id=hex32(), path=rng.choice(["/", "/projets/"]))
            event_id = body.split(b'"event_id": "')[1][:32].decode()
            sends = 2 if rng.random() < self.duplicate_share else 1  # a retry, same id
            for _ in range(sends):
                status, retry_after = self.collector.send(body, ip=consent["ip"], timeout=3.0)
                with self.lock:
                    self.statuses[status] += 1
                    if 200 <= status < 300:
                        self.answers[event_id] += 1
                    if retry_after is not None:
                        self.retry_after.add(retry_after)
                if status in (0, 503):
                    time.sleep(0.02)  # down: do not spin

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self.run, args=(seed,), daemon=True)
                        for seed in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def answered(self) -> int:
        with self.lock:
            return len(self.answers)

    def wait_for(self, answered: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.answered() < answered:
            assert time.monotonic() < deadline, f"only {self.answered()} beacons answered"
            time.sleep(0.02)


def wait_until_drained(spool: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while any(spool.glob("*.jsonl")):
        assert time.monotonic() < deadline, "the spool was not drained in time"
        time.sleep(0.1)


def tally(url: str, load: Load) -> dict[str, int]:
    """Compare what clients were told with what the database holds."""
    engine = create_engine(url)
    with engine.connect() as db:
        rows = {bytes(event_id).hex(): n for event_id, n in db.execute(
            text("SELECT event_id, count(*) FROM pageviews GROUP BY 1"))}
        counted = db.scalar(text("SELECT coalesce(sum(pageviews), 0) FROM visits"))
    engine.dispose()
    answered = set(load.answers)
    return {
        "answered": len(answered),
        "answers": sum(load.answers.values()),
        "duplicated": sum(n - 1 for n in load.answers.values()),
        "stored": sum(rows.values()),
        "stored_twice": sum(1 for n in rows.values() if n > 1),
        "lost": len(answered - set(rows)),
        "stored_unanswered": len(set(rows) - answered),
        "counted_in_visits": int(counted),
    }


def database(engine: str, postgres_factory, tmp_path: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'tracker.sqlite3'}"
    return postgres_factory().create_database(f"crash_{secrets.token_hex(4)}")


@pytest.mark.parametrize("engine", ["sqlite",
                                    pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sigkill_mid_load_loses_and_doubles_nothing(engine, request, dns_server, tmp_path):
    url = database(engine, lambda: request.getfixturevalue("postgres"), tmp_path)
    consents = migrated_database_with_consents(url, tmp_path, VISITORS)
    spool = tmp_path / "spool"
    env = collector_env(url, spool, dns_server.address) | {"TRACKER_INGEST_INTERVAL": "0.1"}
    collector = CollectorProcess(env, tmp_path / "collector.log").start()
    try:
        with Load(collector, consents) as load:
            load.wait_for(150)
            collector.kill()  # master and workers, mid-request and mid-drain
            killed_at = load.answered()
            collector.start()  # same port, same spool: it adopts the dead workers' segments
            load.wait_for(killed_at + 150)
        wait_until_drained(spool)
    finally:
        collector.stop()

    counts = tally(url, load)
    print(f"\nkill -9 ({engine}): {counts}; statuses {dict(load.statuses)}")
    assert load.statuses[0] > 0, "the kill interrupted no request: it came too late"
    assert counts["duplicated"] > 0
    assert counts["lost"] == 0
    assert counts["stored_twice"] == 0
    # Stored but never answered: spooled just before the kill cut the reply. Harmless.
    assert counts["stored"] == counts["answered"] + counts["stored_unanswered"]
    assert counts["counted_in_visits"] == counts["stored"]
    assert set(load.statuses) <= {0, 202}


@pytest.mark.postgres
def test_postgres_outage_gets_503_and_loses_nothing_acknowledged(postgres, dns_server,
                                                                 tmp_path):
    url = postgres.create_database(f"outage_{secrets.token_hex(4)}")
    consents = migrated_database_with_consents(url, tmp_path, VISITORS)
    spool = tmp_path / "spool"
    env = collector_env(url, spool, dns_server.address) | {"TRACKER_INGEST_INTERVAL": "0.5"}
    collector = CollectorProcess(env, tmp_path / "collector.log").start()
    try:
        with Load(collector, consents) as load:
            load.wait_for(100)
            postgres.stop()
            try:
                before = sum(load.statuses.values())
                outage_answered = load.answered()
                time.sleep(1.5)  # beacons keep coming while the database is down
                during = Counter(load.statuses)
                assert sum(during.values()) > before + 10
                # What was accepted while down: nothing (bar requests already in flight).
                assert load.answered() - outage_answered <= CLIENTS
            finally:
                postgres.resume()
            recovered_at = load.answered()
            load.wait_for(recovered_at + 100)
        wait_until_drained(spool)
    finally:
        collector.stop()

    counts = tally(url, load)
    print(f"\nPostgreSQL outage: {counts}; statuses {dict(load.statuses)}")
    assert during[503] > 0
    # Ours says 5 s; Flask-Limiter, when its headers are on, raises it to its window's reset.
    assert load.retry_after and all(int(value) >= RETRY_AFTER_SECONDS
                                    for value in load.retry_after)
    assert set(load.statuses) <= {202, 503}  # never a 500, never a dropped connection
    assert counts["lost"] == 0
    assert counts["stored_twice"] == 0
    assert counts["counted_in_visits"] == counts["stored"]
    log = (tmp_path / "collector.log").read_text()
    assert "draining the spool failed" in log  # the drainer met the outage and recovered


def test_drainers_never_take_a_live_writers_segment(tmp_path):
    """A drainer adopting dead writers' segments must not grab one a live writer has just
    created (before it was locked): the writer would append to a segment already drained."""
    from tracker.services.spool import Spool

    writer, drainer = Spool(tmp_path), Spool(tmp_path)  # two lock holders, as two processes
    written, drained, errors = [], [], []
    done = threading.Event()

    def write() -> None:
        try:
            for number in range(6000):
                writer.append({"n": number})
                written.append(number)
                if number % 3 == 0:
                    writer.rotate()  # a new segment every few events: many creations
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            done.set()

    def handle(events: list[dict]) -> list[dict]:
        drained.extend(e["n"] for e in events)
        return []

    thread = threading.Thread(target=write)
    thread.start()
    while not done.is_set():
        drainer.drain(handle)
    thread.join()
    writer.rotate()
    drainer.drain(handle)
    assert errors == []
    assert sorted(drained) == written  # every event drained, exactly once


def test_a_hostile_beacon_cannot_block_the_drain(client, app):
    """Values a column cannot hold (a 60-character browser family from a crafted User-Agent,
    a NUL in a UTM value) are fitted to their columns, on PostgreSQL too."""
    from sqlalchemy import select

    from tests.helpers import beacon, decide
    from tracker.extensions import db
    from tracker.models import Visit
    from tracker.services import runtime

    consent = decide(client)
    agent = "Mozilla/5.0 (compatible; " + "A" * 60 + "bot/1.0)"
    assert beacon(client, consent, path="/?utm_source=a%00b", user_agent=agent).status_code == 202
    assert runtime.ingest().drain() == 1
    visit = db.session.scalars(select(Visit)).one()
    assert visit.utm_source == "ab"
    assert 0 < len(visit.browser) <= Visit.__table__.c.browser.type.length


def test_an_event_that_cannot_be_stored_is_set_aside_not_blocking(client, app, caplog):
    """A spooled event the drain cannot store (here a hand-damaged line) is quarantined
    alone; the events around it are stored, the spool empties, and the log names the event
    by its id only."""
    import json as jsonlib
    import logging

    from sqlalchemy import func, select

    from tests.helpers import KNOWN_IP, beacon, decide
    from tracker.extensions import db
    from tracker.models import Pageview
    from tracker.services import runtime

    consent = decide(client)
    for _ in range(5):
        assert beacon(client, consent).status_code == 202
    spool = runtime.ingest().spool
    spool.rotate()
    bad = {"type": "pageview", "event_id": hex32(), "visitor_id": consent["visitor_id"],
           "consent_id": consent["consent_id"], "url": "https://amniotic.studio/",
           "referrer": "", "title": "", "pageview_id": None, "engaged_ms": 0,
           "ip": KNOWN_IP, "user_agent": "x", "received_at": "not a time"}
    (spool.directory / "ready-damaged.jsonl").write_text(jsonlib.dumps(bad) + "\n")
    caplog.set_level(logging.INFO)
    runtime.ingest().drain()
    assert db.session.scalar(select(func.count()).select_from(Pageview)) == 5
    assert not list(spool.directory.glob("*.jsonl"))
    (quarantined,) = spool.quarantine_dir.glob("*.jsonl")
    assert jsonlib.loads(quarantined.read_text())["event_id"] == bad["event_id"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert bad["event_id"] in logged and KNOWN_IP not in logged


def test_when_no_event_can_be_stored_nothing_is_set_aside(client, app):
    """If every event of a batch fails, the fault is not in the events: the drain fails and
    leaves them all in the spool (to be retried), quarantining none."""
    import json as jsonlib

    from tests.helpers import KNOWN_IP, decide
    from tracker.services import runtime

    consent = decide(client)
    spool = runtime.ingest().spool
    damaged = [{"type": "pageview", "event_id": hex32(), "visitor_id": consent["visitor_id"],
                "consent_id": consent["consent_id"], "url": "https://amniotic.studio/",
                "referrer": "", "title": "", "pageview_id": None, "engaged_ms": 0,
                "ip": KNOWN_IP, "user_agent": "x", "received_at": f"not a time {n}"}
               for n in range(3)]
    (spool.directory / "ready-damaged.jsonl").write_text(
        "".join(jsonlib.dumps(e) + "\n" for e in damaged))
    with pytest.raises(ValueError):
        runtime.ingest().drain()
    assert (spool.directory / "ready-damaged.jsonl").exists()
    assert not list(spool.quarantine_dir.glob("*"))
