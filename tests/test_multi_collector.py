"""Two collector processes (two "hosts", each its own spool) writing to one PostgreSQL.

Several client threads send beacons to both at once; visitors move between them, some
beacons are delivered to both (a retry through another host), engagements reach the other
host than their pageview. Afterwards every beacon answered 2xx is stored exactly once, each
visitor has one visit, and no visit counts a pageview or an engaged millisecond twice.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
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

pytestmark = pytest.mark.postgres

VISITORS = 12
THREADS = 6
BEACONS_PER_THREAD = 50


def wait_until_drained(*spools: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while any(any(spool.glob("*.jsonl")) for spool in spools):
        assert time.monotonic() < deadline, "the spools were not drained in time"
        time.sleep(0.1)


def test_two_collectors_one_postgres(postgres, dns_server, tmp_path):
    url = postgres.create_database(f"multi_{secrets.token_hex(4)}")
    consents = migrated_database_with_consents(url, tmp_path, VISITORS)
    spools = [tmp_path / "spool-a", tmp_path / "spool-b"]
    collectors = [CollectorProcess(collector_env(url, spool, dns_server.address),
                                   tmp_path / f"collector-{i}.log")
                  for i, spool in enumerate(spools)]
    lock = threading.Lock()
    answered: dict[str, int] = {}  # pageview event id -> 2xx answers
    engaged: dict[str, int] = {}  # pageview event id -> largest engagement answered 2xx
    failures: list[int] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        mine: list[tuple[dict, str]] = []
        for _ in range(BEACONS_PER_THREAD):
            consent = rng.choice(consents)
            host = rng.choice(collectors)
            if mine and rng.random() < 0.25:  # engagement, often through the other host
                owner, pageview_id = rng.choice(mine)
                ms = rng.randrange(1000, 60000)
                status, _ = host.send(beacon_body(owner, type="engagement",
                                                  pageview_id=pageview_id, engaged_ms=ms),
                                      ip=owner["ip"])
                if status == 202:
                    with lock:
                        engaged[pageview_id] = max(engaged.get(pageview_id, 0), ms)
                else:
                    failures.append(status)
                continue
            event_id = hex32()
            body = beacon_body(consent, event_id=event_id, path=rng.choice(
                ["/", "/projets/", "/studio/", "/contact"]))
            # One beacon in five is delivered to both hosts.
            hosts = collectors if rng.random() < 0.2 else [host]
            for target in hosts:
                status, _ = target.send(body, ip=consent["ip"])
                if status == 202:
                    with lock:
                        answered[event_id] = answered.get(event_id, 0) + 1
                else:
                    failures.append(status)
            mine.append((consent, event_id))

    try:
        for collector in collectors:
            collector.start()
        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until_drained(*spools)
    finally:
        for collector in collectors:
            collector.stop()

    assert failures == []
    assert sum(answered.values()) > len(answered) > THREADS * BEACONS_PER_THREAD // 2
    engine = create_engine(url)
    with engine.connect() as db:
        stored = db.execute(text("SELECT event_id, count(*) FROM pageviews GROUP BY 1")).all()
        per_visit = db.execute(text(
            "SELECT v.id, v.pageviews, v.engaged_ms, count(p.id), "
            "coalesce(sum(p.engaged_ms), 0) FROM visits v "
            "LEFT JOIN pageviews p ON p.visit_id = v.id GROUP BY v.id")).all()
        visits_per_visitor = db.execute(text(
            "SELECT visitor_id, count(*) FROM visits GROUP BY 1")).all()
        engaged_stored = {bytes(event_id).hex(): ms for event_id, ms in db.execute(text(
            "SELECT event_id, engaged_ms FROM pageviews WHERE engaged_ms > 0"))}
        homes = db.scalars(text("SELECT DISTINCT tableoid::regclass::text FROM pageviews")).all()
    engine.dispose()

    # Every beacon answered 2xx is stored, exactly once, however often it was delivered.
    assert {bytes(event_id).hex() for event_id, _ in stored} == set(answered)
    assert all(copies == 1 for _, copies in stored)
    # No double counting: each visit's counters are exactly the sum of its pageviews.
    assert all(views == counted for _, views, _, counted, _ in per_visit)
    assert all(ms == summed for _, _, ms, _, summed in per_visit)
    assert sum(views for _, views, *_ in per_visit) == len(stored)
    # Concurrent drainers on two hosts never split one visitor's visit in two.
    assert all(count == 1 for _, count in visits_per_visitor)
    # Engagements that crossed hosts were applied, keeping the largest value.
    assert engaged_stored == engaged
    # Rows live in monthly partitions created by the drainers (never in DEFAULT).
    assert homes and all(name.startswith("pageviews_2") for name in homes)
