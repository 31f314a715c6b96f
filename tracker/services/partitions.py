"""Monthly partitions of `pageviews` on PostgreSQL: created ahead by ingest, dropped by retention.

On PostgreSQL the table is declared `PARTITION BY RANGE (ts)` (see tracker.models.analytics).
Each month gets its own partition, created a few months ahead so that no row ever waits for
one; a DEFAULT partition catches anything else (rows far in the past or future), so an insert
never fails for want of a partition. Retention drops whole months at once, which costs no
row-by-row delete, no index churn and no table bloat. On SQLite every function here is a no-op.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import Connection, Engine, text

from tracker.clock import utcnow
from tracker.models.analytics import Pageview

log = logging.getLogger("tracker.partitions")

TABLE = Pageview.__tablename__
DEFAULT_PARTITION = f"{TABLE}_default"
# Months created ahead of the current one, so that a partition exists long before its rows.
MONTHS_AHEAD = 2
# Creating a partition briefly locks the parent table; never queue behind a long report.
LOCK_TIMEOUT = "2s"
# pg_advisory_xact_lock key serialising partition changes between processes and hosts.
LOCK_KEY = 0x7061727469  # "parti"


def is_partitioned(bind: Engine | Connection) -> bool:
    """Whether this database partitions pageviews (PostgreSQL)."""
    return bind.dialect.name == "postgresql"


def month_of(at: datetime | date) -> date:
    return date(at.year, at.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    """`pageviews_2026_11` holds the pageviews of November 2026."""
    return f"{TABLE}_{month:%Y_%m}"


def _partitions(connection: Connection) -> set[str]:
    return set(connection.scalars(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = CAST(:table AS regclass)"), {"table": TABLE}))


class Partitions:
    """Ensures monthly partitions exist; remembers what it created, so repeats cost nothing."""

    def __init__(self) -> None:
        self._known: set[date] = set()
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Check the catalog again on the next call (after partitions were dropped)."""
        with self._lock:
            self._known.clear()

    def ensure(self, engine: Engine, months: Iterable[date]) -> None:
        """Create the partitions of `months` (and the months ahead of now) when missing.

        Runs in its own short transaction, before the transaction that inserts the rows.
        """
        if not is_partitioned(engine):
            return
        wanted = set(months)
        with self._lock:
            if wanted <= self._known:
                return
            month = month_of(utcnow())
            for _ in range(MONTHS_AHEAD + 1):
                wanted.add(month)
                month = next_month(month)
            try:
                with engine.begin() as connection:
                    self._known |= _create(connection, sorted(wanted - self._known))
            except Exception:
                # Rows land in the DEFAULT partition meanwhile; nothing is lost.
                log.warning("could not create pageview partitions; will retry", exc_info=True)


def _create(connection: Connection, months: list[date]) -> set[date]:
    connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    existing = _partitions(connection)
    if DEFAULT_PARTITION not in existing:
        connection.execute(text(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT"))
    done = set()
    for month in months:
        name = partition_name(month)
        if name not in existing:
            start, end = month, next_month(month)
            stray = connection.scalar(text(  # names come from dates, never from input
                f"SELECT 1 FROM {DEFAULT_PARTITION} WHERE ts >= :start AND ts < :end "  # noqa: S608
                "LIMIT 1"), {"start": start, "end": end})
            if stray:
                # PostgreSQL refuses a partition whose rows already sit in DEFAULT; they stay
                # there (still counted, still deleted by retention's DELETE).
                log.warning("pageviews of %s are in the default partition; no partition "
                            "created for that month", f"{month:%Y-%m}")
            else:
                connection.execute(text(
                    f"CREATE TABLE {name} PARTITION OF {TABLE} "
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"))
        done.add(month)
    return done


def drop_expired(engine: Engine, before: datetime) -> list[str]:
    """Drop every monthly partition whose rows are all older than `before`; return their names.

    For the retention job: call it first, then delete the remaining older rows as usual
    (they sit in the partition of the month `before` falls in, or in DEFAULT). A no-op
    returning [] on SQLite.
    """
    if not is_partitioned(engine):
        return []
    dropped = []
    with engine.begin() as connection:
        connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        for name in sorted(_partitions(connection)):
            if name == DEFAULT_PARTITION:
                continue
            year, month = (int(part) for part in name.removeprefix(f"{TABLE}_").split("_"))
            if datetime.combine(next_month(date(year, month, 1)), datetime.min.time()) <= before:
                connection.execute(text(f"DROP TABLE {name}"))
                dropped.append(name)
    if dropped:
        log.info("dropped pageview partitions %s", ", ".join(dropped))
    return dropped
