"""Ingest: /api/collect under wrk against a bare Flask endpoint, then volume and footprint.

Both apps run under gunicorn with the same worker settings, loaded by the same wrk script at
the same concurrency, in alternating rounds (a, b, a, b, ...) so that a noisy neighbour on
the machine hurts both alike; each figure is the median over the rounds. After each round
of (b) the spool is drained before anything else runs, so the collector's deferred work is
not left for the baseline to pay for. Loss is counted beacon by beacon: the event ids wrk
saw answered 2xx, minus the event ids found in the database.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from bench import traffic, wrk
from bench.dns import ptr_server
from bench.harness import (
    BIN,
    ROOT,
    Figure,
    Server,
    cpu_seconds,
    die_with_parent,
    peak_rss_mib,
)

GEOIP = ROOT / "tests" / "data" / "geoip"
DRAINER_NICENESS = 10


@dataclass(frozen=True)
class Options:
    quick: bool
    seconds: float  # per round and per app
    rounds: int
    connections: int
    visitors: int
    volumes: tuple[int, ...]  # beacons after which the workers' peak RSS is read
    workers: int
    # "process": `flask ingest` at niceness 10 beside the web workers, as the README deploys
    # it; or "thread": a drainer thread in each web process (the settings' default)
    drainer: str = "process"
    engine: str = "sqlite"  # or "postgresql" (a throwaway cluster)

    @classmethod
    def make(cls, quick: bool, **overrides: object) -> Options:
        workers = 2  # the README's `gunicorn -w 2`
        if quick:
            options = cls(True, 3.0, 1, 16, 500, (5_000, 15_000), workers)
        else:
            options = cls(False, 8.0, 3, 16, 5000, (100_000, 1_000_000), workers)
        return cls(**{**options.__dict__, **{k: v for k, v in overrides.items() if v}})


@dataclass
class Round:
    bare: wrk.Result
    tracker: wrk.Result
    bare_cpu: float  # server CPU seconds per request
    tracker_cpu: float  # including the drain of what the round spooled
    drain_lag: float
    drain_cpu: float = 0.0  # the `flask ingest` process's share (with --drainer process)


@dataclass
class Collector:
    """The tracker under test: gunicorn, its drainer, and what it was sent."""

    server: Server
    spool: Path
    url: str
    answered_file: Path
    ingest: subprocess.Popen | None = None
    answered: int = 0

    def pids(self) -> list[int]:
        own = [self.server.process.pid, *self.server.worker_pids()]  # type: ignore[union-attr]
        return own + ([self.ingest.pid] if self.ingest else [])


def prepare_database(url: str, spool: Path, people: list[traffic.Visitor]) -> None:
    """Migrate a fresh database the way production does and store the visitors' consents."""
    from flask_migrate import upgrade

    from tracker import create_app
    from tracker.clock import utcnow
    from tracker.extensions import db
    from tracker.models import Consent
    from tracker.services import runtime

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "TRACKER_SPOOL_DIR": str(spool)})
    with app.app_context():
        logging.disable(logging.INFO)  # Alembic's progress lines
        try:
            upgrade()
        finally:
            logging.disable(logging.NOTSET)
        now = utcnow()
        banner = runtime.banner().archive(now)
        db.session.commit()
        rows = list(traffic.consent_rows(people, banner, app.config["TRACKER_POLICY_VERSION"],
                                         now))
        db.session.execute(insert(Consent), rows)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def tracker_env(url: str, spool: Path, dns: str, drainer: str = "thread") -> dict[str, str]:
    return {
        "TRACKER_DATABASE_URL": url,
        "TRACKER_SPOOL_DIR": str(spool),
        "TRACKER_SITE_ORIGINS": traffic.SITE,
        "TRACKER_GEOIP_ASN_DB": str(GEOIP / "GeoLite2-ASN-Test.mmdb"),
        "TRACKER_GEOIP_CITY_DB": str(GEOIP / "GeoIP2-City-Test.mmdb"),
        "TRACKER_DNS_SERVERS": dns,
        "TRACKER_TRUSTED_PROXIES": "1",
        "TRACKER_SECRET_KEY": "bench",
        "TRACKER_INGEST_IN_PROCESS": "true" if drainer == "thread" else "false",
        # Every visitor has its own address, far below the default limit; this only makes
        # sure a load generator is never refused (the limiter still counts every beacon).
        "TRACKER_COLLECT_RATE_LIMIT": "1000000 per minute",
    }


def stored_ids(url: str) -> set[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = {bytes(i).hex() for i in conn.scalars(text("SELECT event_id FROM pageviews"))}
    engine.dispose()
    return ids


def wait_for_drain(spool: Path, timeout: float = 600.0) -> float:
    """Wait until the drainers have emptied the spool; return the seconds it took."""
    started = time.monotonic()
    while any(spool.glob("*.jsonl")):
        if time.monotonic() - started > timeout:
            raise TimeoutError("the spool was not drained in time")
        time.sleep(0.05)
    return time.monotonic() - started


@dataclass(frozen=True)
class Footprint:
    bytes: int
    per_table: dict[str, int]


def footprint(url: str) -> Footprint:
    """Bytes the database takes on disk, with no VACUUM: SQLite's file (after a WAL
    checkpoint); PostgreSQL's tables, indexes and TOAST (pg_total_relation_size)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        if url.startswith("sqlite"):
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            path = Path(url.removeprefix("sqlite:///"))
            total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
            rows = conn.exec_driver_sql(
                "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
                "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1")
        else:
            # The tables with their indexes and TOAST (not the catalog of an empty database:
            # 7 MB that would dwarf a small run). A partitioned table has no storage of its
            # own: its partitions are added up under its name.
            rows = conn.execute(text(
                "SELECT coalesce(p.relname, c.relname), sum(pg_total_relation_size(c.oid)) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
                "LEFT JOIN pg_class p ON p.oid = i.inhparent "
                "WHERE n.nspname = 'public' AND c.relkind = 'r' GROUP BY 1"))
        per_table = {name: int(size) for name, size in rows if size}
        if not url.startswith("sqlite"):
            total = sum(per_table.values())
    engine.dispose()
    return Footprint(total, per_table)


@contextmanager
def database(engine_name: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a throwaway PostgreSQL cluster."""
    if engine_name == "sqlite":
        yield f"sqlite:///{workdir / 'tracker.sqlite3'}"
        return
    from tests.support.postgres import HINT, PostgresCluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit(HINT)
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        yield cluster.create_database("tracker_bench")
    finally:
        cluster.destroy()


def run(options: Options) -> list[Figure]:
    """Measure the ceiling and the collector in rounds, then memory and disk at volume."""
    workdir = Path(tempfile.mkdtemp(prefix="tracker-bench-"))
    try:
        figures = _run(options, workdir)
    except BaseException:
        print(f"(kept {workdir} for a look at the logs)", file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    return figures


def _run(options: Options, workdir: Path) -> list[Figure]:
    people = traffic.visitors(options.visitors)
    load = wrk.Load(site=traffic.SITE,
                    visitors=[(p.consent_id, p.visitor_id, p.ip, p.agent) for p in people],
                    agents=traffic.AGENTS, pages=traffic.pages(), referrers=traffic.REFERRERS)
    with ExitStack() as stack:
        url = stack.enter_context(database(options.engine, workdir))
        spool = workdir / "spool"
        prepare_database(url, spool, people)
        dns, _resolver = stack.enter_context(ptr_server(traffic.ptr_names(people)))
        env = tracker_env(url, spool, dns, options.drainer)
        bare = stack.enter_context(Server("bench.baseline_app:create_app()", {},
                                          options.workers))
        tracker = stack.enter_context(Server("tracker:create_app()", env, options.workers,
                                             log=workdir / "tracker.log"))
        collector = Collector(tracker, spool, url, workdir / "answered")
        if options.drainer == "process":
            collector.ingest = subprocess.Popen(
                [str(BIN / "flask"), "--app", "tracker", "ingest"], cwd=ROOT,
                env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                stderr=open(workdir / "ingest.log", "ab"),  # noqa: SIM115
                preexec_fn=_niced_drainer)
            stack.callback(_stop, collector.ingest)

        def blast(server: Server, seconds: float, answered: Path | None = None) -> wrk.Result:
            script = load.script(workdir / "beacons.lua", answered)
            return wrk.run(server.url + "/api/collect", script, seconds=seconds,
                           connections=options.connections)

        warmup = 1.0 if options.quick else 2.0
        blast(bare, warmup)
        collector.answered += blast(tracker, warmup, collector.answered_file).ok
        wait_for_drain(spool)
        rounds = []
        for _ in range(options.rounds):
            before = cpu_seconds(bare.worker_pids() + [bare.process.pid])  # type: ignore[union-attr]
            a = blast(bare, options.seconds)
            a_cpu = cpu_seconds(bare.worker_pids() + [bare.process.pid]) - before  # type: ignore[union-attr]
            drainer = [collector.ingest.pid] if collector.ingest else []
            before, drain_before = cpu_seconds(collector.pids()), cpu_seconds(drainer)
            b = blast(tracker, options.seconds, collector.answered_file)
            lag = wait_for_drain(spool)
            b_cpu = cpu_seconds(collector.pids()) - before
            drain_cpu = cpu_seconds(drainer) - drain_before
            collector.answered += b.ok
            rounds.append(Round(a, b, a_cpu / max(a.requests, 1), b_cpu / max(b.requests, 1),
                                lag, drain_cpu=drain_cpu / max(b.requests, 1)))
        answered = wrk.answered_ids(collector.answered_file)
        lost, round_answered = len(answered - stored_ids(url)), len(answered)

        volumes: list[tuple[int, float, float]] = []
        rate = max(statistics.median(r.tracker.rate for r in rounds), 100.0)
        for target in options.volumes:
            while collector.answered < target:
                chunk = min(60.0, max(1.0, (target - collector.answered) / rate))
                collector.answered += blast(tracker, chunk, collector.answered_file).ok
                wait_for_drain(spool)
            pids = collector.pids()
            volumes.append((collector.answered, max(peak_rss_mib(p) for p in pids),
                            max(peak_rss_mib(p, "VmRSS") for p in pids)))
        answered = wrk.answered_ids(collector.answered_file)
        stored = stored_ids(url)
        volume_lost = len(answered - stored)
        size = footprint(url)
    return _figures(options, rounds, (lost, round_answered), volumes,
                    (volume_lost, len(answered)), len(stored), size)


def _niced_drainer() -> None:
    """As docs/scaling.md deploys it: below the web workers, which answer visitors."""
    die_with_parent()
    os.nice(DRAINER_NICENESS)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _figures(options: Options, rounds: list[Round], loss: tuple[int, int],
             volumes: list[tuple[int, float, float]], volume_loss: tuple[int, int], stored: int,
             size: Footprint) -> list[Figure]:
    (lost, answered), (volume_lost, volume_answered) = loss, volume_loss
    def med(values: Iterator[float]) -> float:
        return statistics.median(list(values))

    a_rate, b_rate = med(r.bare.rate for r in rounds), med(r.tracker.rate for r in rounds)
    ratio = med(r.tracker.rate / r.bare.rate for r in rounds)
    a50, b50 = med(r.bare.p50_ms for r in rounds), med(r.tracker.p50_ms for r in rounds)
    a99, b99 = med(r.bare.p99_ms for r in rounds), med(r.tracker.p99_ms for r in rounds)
    p99_ratio = med(r.tracker.p99_ms / r.bare.p99_ms for r in rounds)
    a_cpu, b_cpu = med(r.bare_cpu for r in rounds), med(r.tracker_cpu for r in rounds)
    setup = (f"gunicorn -w {options.workers} sync, wrk -c {options.connections}, "
             f"{options.rounds} x {options.seconds:.0f} s each, drainer: {options.drainer}, "
             f"{options.engine}")
    figures = [
        Figure("ingest throughput (b/a)", ratio, ">= 0.60", ratio >= 0.60,
               f"b {b_rate:,.0f} req/s vs a {a_rate:,.0f} req/s ({setup})"),
        Figure("ingest p50 latency (b/a)", med(r.tracker.p50_ms / r.bare.p50_ms for r in rounds),
               "", None, f"b {b50:.2f} ms vs a {a50:.2f} ms"),
        Figure("ingest p99 latency (b/a)", p99_ratio, "< 3.0", p99_ratio < 3.0,
               f"b {b99:.2f} ms vs a {a99:.2f} ms"),
        Figure("server CPU per request (b/a)", b_cpu / a_cpu, "", None,
               f"b {b_cpu * 1e6:.0f} us (drain included) vs a {a_cpu * 1e6:.0f} us"
               + (f"; the drain's share {med(r.drain_cpu for r in rounds) * 1e6:.0f} us"
                  if options.drainer == "process" else "")),
        Figure("ingest loss (2xx not stored)", None, "= 0", lost == 0,
               f"{lost} of {answered:,} beacons answered 2xx in the rounds; spool empty "
               f"{max(r.drain_lag for r in rounds):.1f} s after a round at most"),
    ]
    first_n, first_rss, _ = volumes[0]
    for count, rss, now in volumes:
        figures.append(Figure(f"peak RSS at {count:,} beacons", rss / first_rss,
                              "~1.0 (no growth)", rss / first_rss < 1.10,
                              f"{rss:.1f} MiB, largest collector process (vs {first_rss:.1f} "
                              f"MiB at {first_n:,}); {now:.1f} MiB resident now"))
    figures.append(Figure("volume loss (2xx not stored)", None, "= 0", volume_lost == 0,
                          f"{volume_lost} of {volume_answered:,} beacons answered 2xx "
                          f"({stored:,} pageviews stored)"))
    per_view = size.bytes / max(stored, 1)
    biggest = sorted(size.per_table.items(), key=lambda kv: -kv[1])[:4]
    detail = ", ".join(f"{name} {b / max(stored, 1):.0f}" for name, b in biggest)
    figures.append(Figure("disk bytes per pageview", per_view / 200, "<= 1.0 (200 B)",
                          per_view <= 200,
                          f"{per_view:.0f} B ({size.bytes / 2**20:.1f} MiB for {stored:,} "
                          f"pageviews, {options.visitors:,} visitors; B/pageview by table: "
                          f"{detail})"))
    return figures
