"""Rollups of the reports: counts per local day, kept in step with pageviews and visits.

Counts only: no visitor id, IP address or name. Distinct visitors (and visits) are
HyperLogLog sketches (tracker.domain.hll): per register, the largest rank of hashes seen.

Triggers on `pageviews` and `visits` record the UTC hour of every row inserted, updated or
deleted in `rollup_dirty`, in the writer's own transaction: a change is marked if and only
if it commits, so the refresh job (tracker.services.rollups) never misses one. The triggers
are created with the tables (`create_all`) and again, if missing, by every refresh (a
migrated database gets them on its first refresh, which rebuilds everything anyway).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Date,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db

# Ids of append-only tables: 64-bit on PostgreSQL, SQLite's rowid alias there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class RollupState(db.Model):
    """Key/value facts about the rollups: their time zone, whether they are complete."""

    __tablename__ = "rollup_state"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class RollupDirty(db.Model):
    """An hour (UTC, hours since 1970) whose rows changed since its rollups were computed.

    Not unique on purpose: concurrent writers never wait on each other's marks.
    """

    __tablename__ = "rollup_dirty"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hour: Mapped[int] = mapped_column(BigInteger, index=True)


class RollupPageDay(db.Model):
    """Pageviews of one page on one local day (bots left out), with their engaged time."""

    __tablename__ = "rollup_page_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    page_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pageviews: Mapped[int] = mapped_column(Integer)
    engaged_ms: Mapped[int] = mapped_column(BigInteger)
    # Pageviews per engaged-time bucket (tracker.domain.reports.DURATION_LABELS).
    e0: Mapped[int] = mapped_column(Integer, default=0)
    e1: Mapped[int] = mapped_column(Integer, default=0)
    e2: Mapped[int] = mapped_column(Integer, default=0)
    e3: Mapped[int] = mapped_column(Integer, default=0)
    e4: Mapped[int] = mapped_column(Integer, default=0)
    e5: Mapped[int] = mapped_column(Integer, default=0)
    e6: Mapped[int] = mapped_column(Integer, default=0)
    # HyperLogLog sketches of the visitors and of the visits these pageviews belong to.
    visitors: Mapped[bytes] = mapped_column(LargeBinary)
    visits: Mapped[bytes] = mapped_column(LargeBinary)


class RollupVisitDay(db.Model):
    """Visits started on one local day, grouped by one attribute (`dim`, `key`).

    dims: total (key None), entry and exit (page id), referrer, utm_source, utm_medium,
    utm_campaign (the value, None when absent) and channel (its name).
    """

    __tablename__ = "rollup_visit_days"
    __table_args__ = (Index("ix_rollup_visit_days_day_dim", "day", "dim"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    dim: Mapped[str] = mapped_column(String(16))
    key: Mapped[str | None] = mapped_column(String(260))
    visits: Mapped[int] = mapped_column(Integer)
    pageviews: Mapped[int] = mapped_column(Integer)  # the visits' pageviews, all of them
    bounces: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    # Visits per duration bucket (tracker.domain.reports.DURATION_LABELS).
    d0: Mapped[int] = mapped_column(Integer, default=0)
    d1: Mapped[int] = mapped_column(Integer, default=0)
    d2: Mapped[int] = mapped_column(Integer, default=0)
    d3: Mapped[int] = mapped_column(Integer, default=0)
    d4: Mapped[int] = mapped_column(Integer, default=0)
    d5: Mapped[int] = mapped_column(Integer, default=0)
    d6: Mapped[int] = mapped_column(Integer, default=0)
    visitors: Mapped[bytes | None] = mapped_column(LargeBinary)


class RollupTransitionDay(db.Model):
    """Pageviews of one local day by (previous page, page); previous 0 is the visit's start."""

    __tablename__ = "rollup_transition_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    prev_page_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    page_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pageviews: Mapped[int] = mapped_column(Integer)


class RollupJourneyDay(db.Model):
    """Visits started on one local day by journey (entry to exit, as the reports show it).

    `by` page: page ids joined by ","; `by` section: section names joined by JOURNEY_SEP.
    """

    __tablename__ = "rollup_journey_days"
    __table_args__ = (Index("ix_rollup_journey_days_day_by", "day", "by"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    by: Mapped[str] = mapped_column(String(8))
    journey: Mapped[str] = mapped_column(Text)
    visits: Mapped[int] = mapped_column(Integer)


ROLLUP_TABLES = (RollupPageDay, RollupVisitDay, RollupTransitionDay, RollupJourneyDay)

# -- the triggers that mark changed hours ---------------------------------------------------

# (table, timestamp column that places a row in a bucket)
WATCHED = (("pageviews", "ts"), ("visits", "started_at"))


# Templates filled with our own table and column names (never input): ROW is NEW or OLD.
# On SQLite the columns are integer microseconds (tracker.models.types.Timestamp).
_SQLITE_MARK = ("INSERT INTO rollup_dirty (hour) SELECT h FROM (SELECT ROW.COLUMN / 3600000000 "
                "AS h) WHERE NOT EXISTS (SELECT 1 FROM rollup_dirty WHERE hour = h); ")
_POSTGRES_MARK = """
CREATE OR REPLACE FUNCTION rollup_mark_TABLE() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One statement marks each distinct hour it touched once: cheap for batched writes.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO rollup_dirty (hour) SELECT DISTINCT HOUR FROM rollup_new;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO rollup_dirty (hour) SELECT DISTINCT HOUR
        FROM (SELECT COLUMN FROM rollup_new UNION ALL SELECT COLUMN FROM rollup_old) AS t;
    ELSE
        INSERT INTO rollup_dirty (hour) SELECT DISTINCT HOUR FROM rollup_old;
    END IF;
    RETURN NULL;
END $$"""


def _sqlite_triggers() -> list[str]:
    statements = []
    for table, column in WATCHED:
        for op, rows in (("INSERT", ("NEW",)), ("UPDATE", ("NEW", "OLD")), ("DELETE", ("OLD",))):
            body = "".join(_SQLITE_MARK.replace("ROW", row).replace("COLUMN", column)
                           for row in rows)
            statements.append(f"CREATE TRIGGER IF NOT EXISTS rollup_mark_{table}_{op.lower()} "
                              f"AFTER {op} ON {table} FOR EACH ROW BEGIN {body}END")
    return statements


def _postgres_function(table: str, column: str) -> str:
    return (_POSTGRES_MARK.replace("HOUR", "floor(extract(epoch FROM COLUMN) / 3600)::bigint")
            .replace("COLUMN", column).replace("TABLE", table))


def _postgres_triggers(connection: Connection) -> list[str]:
    existing = set(connection.scalars(text(
        "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'rollup_mark_%'")))
    statements = []
    for table, column in WATCHED:
        statements.append(_postgres_function(table, column))
        for op, refs in (("INSERT", "NEW TABLE AS rollup_new"),
                         ("UPDATE", "OLD TABLE AS rollup_old NEW TABLE AS rollup_new"),
                         ("DELETE", "OLD TABLE AS rollup_old")):
            name = f"rollup_mark_{table}_{op.lower()}"
            if name not in existing:
                statements.append(f"CREATE TRIGGER {name} AFTER {op} ON {table} REFERENCING "
                                  f"{refs} FOR EACH STATEMENT EXECUTE FUNCTION "
                                  f"rollup_mark_{table}()")
    return statements


def triggers_installed(connection: Connection) -> bool:
    """Whether every marking trigger exists."""
    if connection.dialect.name == "sqlite":
        count = connection.scalar(text(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
            "AND name LIKE 'rollup_mark_%'"))
    else:
        count = connection.scalar(text(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'rollup_mark_%'"))
    return count == 3 * len(WATCHED)


def install_triggers(connection: Connection) -> None:
    """Create the marking triggers that are missing (idempotent)."""
    if connection.dialect.name == "sqlite":
        statements = _sqlite_triggers()
    elif triggers_installed(connection):
        return
    else:
        statements = _postgres_triggers(connection)
    for statement in statements:
        connection.exec_driver_sql(statement)


@event.listens_for(db.metadata, "after_create")
def _after_create(metadata: Any, connection: Connection, **kw: Any) -> None:
    """Tables built from the models (tests) get the triggers at once."""
    tables = {t.name for t in kw.get("tables") or metadata.sorted_tables}
    if {"pageviews", "visits", RollupDirty.__tablename__} <= tables:
        install_triggers(connection)


class RollupSketchMonth(db.Model):
    """The union of a local month's daily sketches, so a year reads 12 sketches, not 365.

    `source` page: `dim` is "visitors" or "visits", `key` the page id; `source` visit: `dim`
    and `key` as in RollupVisitDay.
    """

    __tablename__ = "rollup_sketch_months"
    __table_args__ = (Index("ix_rollup_sketch_months_month", "month", "source"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    month: Mapped[date] = mapped_column(Date)  # its first day
    source: Mapped[str] = mapped_column(String(8))
    dim: Mapped[str] = mapped_column(String(16))
    key: Mapped[str | None] = mapped_column(String(260))
    sketch: Mapped[bytes] = mapped_column(LargeBinary)
