"""Consent proofs and the visits they allow us to record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    event,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db
from tracker.models.types import HexId, PackedIP, Timestamp

# Personal columns are tagged with their fideslang data category; the register of processing
# must declare every tagged column (tests/test_register.py checks both directions).
IP = {"data_category": "user.device.ip_address"}
COOKIE_ID = {"data_category": "user.device.cookie_id"}
DNS_NAME = {"data_category": "user.device.ip_address"}
BROWSER = {"data_category": "user.device.browser_type"}
LOCATION = {"data_category": "user.location.imprecise"}


class BannerVersion(db.Model):
    """Every banner script served, addressed by its SHA-256, so a proof shows its exact text."""

    __tablename__ = "banner_versions"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    first_served_at: Mapped[datetime] = mapped_column(Timestamp)


class Consent(db.Model):
    """One decision taken in the banner: the proof of consent (or of refusal)."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(HexId, primary_key=True)
    # Only kept when analytics is granted; refusals identify nobody.
    visitor_id: Mapped[str | None] = mapped_column(HexId, index=True, info=COOKIE_ID)
    analytics: Mapped[bool] = mapped_column(Boolean)
    location: Mapped[bool] = mapped_column(Boolean)
    marketing: Mapped[bool] = mapped_column(Boolean)
    method: Mapped[str] = mapped_column(String(16))
    policy_version: Mapped[str] = mapped_column(String(32))
    lang: Mapped[str] = mapped_column(String(2))
    banner_sha256: Mapped[str] = mapped_column(ForeignKey("banner_versions.sha256"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    withdrawn_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Page(db.Model):
    """A distinct page of the site; pageviews point here to stay small."""

    __tablename__ = "pages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(512), unique=True)
    section: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(300), default="")


class Visit(db.Model):
    """Consecutive pageviews of one visitor, until 30 minutes of inactivity."""

    __tablename__ = "visits"
    # Visits are inserted in the order they start: on PostgreSQL a BRIN index (a few pages for
    # millions of rows) finds a range as well as a B-tree that would be a tenth of the table.
    __table_args__ = (Index("ix_visits_started_at", "started_at", postgresql_using="brin",
                            postgresql_with={"autosummarize": "on"}),)

    # Columns are declared widest first, fixed-width before variable: PostgreSQL aligns each
    # value to its type's width, and this order leaves no padding between them.
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    exit_page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    pageviews: Mapped[int] = mapped_column(Integer, default=0)
    engaged_ms: Mapped[int] = mapped_column(Integer, default=0)
    asn: Mapped[int | None] = mapped_column(Integer)
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    # Not (visitor_id, last_seen_at): a visitor has few visits, and the id alone is half the
    # size of the entry.
    visitor_id: Mapped[str] = mapped_column(HexId, index=True, info=COOKIE_ID)
    consent_id: Mapped[str] = mapped_column(HexId, ForeignKey("consents.id"))
    ip: Mapped[str | None] = mapped_column(PackedIP, info=IP)
    dns_name: Mapped[str | None] = mapped_column(String(253), info=DNS_NAME)
    organization: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2), info=LOCATION)
    city: Mapped[str | None] = mapped_column(String(100), info=LOCATION)
    browser: Mapped[str] = mapped_column(String(50), info=BROWSER)
    browser_version: Mapped[str] = mapped_column(String(20), info=BROWSER)
    os: Mapped[str] = mapped_column(String(50), info=BROWSER)
    device: Mapped[str] = mapped_column(String(10), info=BROWSER)
    referrer_domain: Mapped[str | None] = mapped_column(String(253))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))


# On PostgreSQL, pageviews are partitioned by month of `ts` so that retention drops whole
# partitions (tracker.services.partitions creates and drops them). SQLite ignores this.
PAGEVIEW_PARTITIONING = "RANGE (ts)"


class Pageview(db.Model):
    """One page load within a visit; engagement beacons raise its engaged time.

    On PostgreSQL the table has no primary key index: a partitioned table's must include
    `ts`, and (id, ts) would cost a third of the row again. Nothing finds a pageview by its
    id alone (engagements go through their visit), and ids come from one sequence.
    """

    __tablename__ = "pageviews"
    # Rows arrive in time order, so on PostgreSQL a BRIN index serves time ranges for a few
    # pages per million rows; SQLite has no BRIN and reads pages per range from this B-tree.
    __table_args__ = (Index("ix_pageviews_ts_page", "ts", "page_id", postgresql_using="brin",
                            postgresql_with={"autosummarize": "on"}),
                      {"postgresql_partition_by": PAGEVIEW_PARTITIONING})

    # Widest first, as for visits: no padding between the columns on PostgreSQL.
    ts: Mapped[datetime] = mapped_column(Timestamp)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    prev_page_id: Mapped[int | None] = mapped_column(ForeignKey("pages.id"))
    engaged_ms: Mapped[int] = mapped_column(Integer, default=0)
    # The beacon's own id. Not unique here: a unique index on a partitioned table must
    # include the partition key, so redeliveries are refused by SeenEvent instead.
    event_id: Mapped[str] = mapped_column(HexId)


class SeenEvent(db.Model):
    """The id of every beacon stored recently: a redelivered or replayed beacon is stored once.

    A small table of its own (not the partitioned pageviews), kept for a few days after the
    event was stored (tracker.services.ingest.DEDUPE_WINDOW; the drainer purges it):
    duplicates come from spool replays after a crash and from client retries, both within
    minutes. Event ids are random and identify nobody once their pageview is gone. Compact
    on purpose (one row per pageview while it is kept): the id as 16 bytes, a day number.
    """

    __tablename__ = "seen_events"
    # Clustered on the id in SQLite: the id is stored once, not in a table and an index.
    __table_args__ = {"sqlite_with_rowid": False}

    event_id: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    # Days since 1970-01-01 (UTC) when the beacon was stored: all the purge needs.
    stored_day: Mapped[int] = mapped_column(Integer)


@compiles(PrimaryKeyConstraint, "postgresql")
def _no_primary_key_when_partitioned(constraint: PrimaryKeyConstraint, compiler: Any,
                                     **kw: Any) -> str | None:
    """A partitioned table gets no primary key on PostgreSQL (see Pageview).

    The ORM keeps `id` as the identity; SQLite keeps its INTEGER PRIMARY KEY, which costs
    nothing there (it is the rowid). Alembic renders the same constraint through this hook,
    so a regenerated migration builds the same table.
    """
    if constraint.table.dialect_options["postgresql"].get("partition_by"):
        return None  # the compiler leaves out a constraint that renders as None
    return compiler.visit_primary_key_constraint(constraint, **kw)


@event.listens_for(Pageview.__table__, "after_create")
def _default_partition(table: Table, connection: Connection, **kw: Any) -> None:
    """Tables built from the models (tests) accept any row at once: a DEFAULT partition.

    Migrated databases get their partitions from tracker.services.partitions.ensure().
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"CREATE TABLE IF NOT EXISTS {table.name}_default "
                                f"PARTITION OF {table.name} DEFAULT"))
