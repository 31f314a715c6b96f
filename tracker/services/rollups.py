"""Rollups: the reports' figures per local day, so a report reads a few rows per day instead
of every pageview. Counts only (see tracker.models.rollups).

How they stay right:
- Triggers mark the UTC hour of every pageview or visit written (insert, update, delete) in
  `rollup_dirty`, in the writer's transaction (tracker.models.rollups).
- `refresh` recomputes whole local days from the raw rows and *replaces* their rollups, then
  deletes the marks it saw, all in one transaction (REPEATABLE READ on PostgreSQL, the write
  lock on SQLite): a mark committed meanwhile stays, and its day is recomputed next time.
  Running it twice changes nothing; it never adds to a previous figure, so a late engagement
  beacon, a visit going on past midnight or a spool replay of last week's events can
  neither be missed nor counted twice.
- A report reads rollups only for days without a pending mark; the other days of its range
  (today, typically) are computed from the raw rows in memory, by the same code.
- The first refresh (or one after a change of time zone or of section rules) rebuilds
  everything, a chunk of days per transaction, resuming where the last call stopped; until it
  is complete the reports use the raw rows.

Distinct counts (visitors; visits per section and page) are HyperLogLog sketches: exact
ranges are unions of daily sketches, the count is an estimate (tracker.domain.hll, 1.6 %
standard error). Reports over ranges holding fewer than MIN_VISITS visits are computed from
the raw rows, exactly (they are cheap); see `plan`.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Connection, delete, false, func, insert, not_, or_, select, text

from tracker.domain import hll
from tracker.domain.reports import (
    DURATION_LABELS,
    DateRange,
    ReportQuery,
    channel,
    duration_bucket,
    journey_of,
    local_date,
    local_midnight_utc,
    zone,
)
from tracker.extensions import db
from tracker.models import Page, Pageview, Visit
from tracker.models.rollups import (
    ROLLUP_TABLES,
    RollupDirty,
    RollupJourneyDay,
    RollupPageDay,
    RollupSketchMonth,
    RollupState,
    RollupTransitionDay,
    RollupVisitDay,
    install_triggers,
)

log = logging.getLogger("tracker.rollups")

# Below this many visits in a range, reports read the raw rows: exact and cheap enough.
MIN_VISITS = 20_000
# Journeys kept per day (and per `by`), the most frequent: the reports show the top 20 of a
# range, and the long tail of distinct journeys grows with the traffic (at 10M pageviews it
# made the flows report 7x slower than at 1M). A journey's count over a range misses the days
# it was not among that day's most frequent: at most that day's last kept count each time.
JOURNEYS_PER_DAY = 100
# Rows fetched from the database at a time while a day is computed.
STREAM_ROWS = 5_000
# Days recomputed per transaction: short enough not to hold the collector's writes for long
# (a rebuild takes bigger steps: it holds no pending mark and reports read raw meanwhile).
CHUNK_DAYS = 7
REBUILD_CHUNK_DAYS = 7
# How often the drainer refreshes at most (maybe_refresh); reports read pending days raw
# meanwhile.
REFRESH_INTERVAL = timedelta(seconds=60)
# pg_advisory_xact_lock key: one refresh at a time across processes and hosts.
LOCK_KEY = 0x726F6C6C7570  # "rollup"
N_BUCKETS = len(DURATION_LABELS)
VISIT_DIMS = ("total", "entry", "exit", "referrer", "utm_source", "utm_medium",
              "utm_campaign", "channel")
# Dimensions whose reports show distinct visitors (the others carry no sketch).
SKETCHED_DIMS = {"total", "entry", "referrer", "utm_source", "utm_medium", "utm_campaign"}
JOURNEY_SEP = "\x1f"
EPOCH = datetime(1970, 1, 1)

# -- what one day's rollups hold ----------------------------------------------------------


@dataclass
class PageAgg:
    pageviews: int = 0
    engaged_ms: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * N_BUCKETS)
    visitors: int = hll.EMPTY
    visits: int = hll.EMPTY

    def add(self, other: PageAgg) -> None:
        self.pageviews += other.pageviews
        self.engaged_ms += other.engaged_ms
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.visitors = hll.union(self.visitors, other.visitors)
        self.visits = hll.union(self.visits, other.visits)


@dataclass
class VisitAgg:
    visits: int = 0
    pageviews: int = 0
    bounces: int = 0
    duration_ms: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * N_BUCKETS)
    visitors: int = hll.EMPTY

    def add(self, other: VisitAgg) -> None:
        self.visits += other.visits
        self.pageviews += other.pageviews
        self.bounces += other.bounces
        self.duration_ms += other.duration_ms
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.visitors = hll.union(self.visitors, other.visitors)


@dataclass
class DayRollups:
    """Rollups of some days, computed from the raw rows (stored by refresh, or used as is)."""

    pages: dict[tuple[date, int], PageAgg] = field(default_factory=dict)
    visits: dict[tuple[date, str, str | None], VisitAgg] = field(default_factory=dict)
    transitions: Counter[tuple[date, int, int]] = field(default_factory=Counter)
    journeys: Counter[tuple[date, str, str]] = field(default_factory=Counter)


class _Days:
    """Local days of naive-UTC instants, by bisecting the days' UTC midnights."""

    def __init__(self, first: date, last: date, tz: ZoneInfo) -> None:
        self.days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        self.starts = [local_midnight_utc(d, tz) for d in self.days]
        self.end = local_midnight_utc(last + timedelta(days=1), tz)

    def of(self, at: datetime) -> date | None:
        if at < self.starts[0] or at >= self.end:
            return None
        return self.days[bisect.bisect_right(self.starts, at) - 1]


def _runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) runs."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


_channel = functools.lru_cache(maxsize=8192)(channel)


class _Hashes:
    """The sketches' hashes of visitor and visit ids, cached for one computation only (the
    same visitor on many pages): no visitor id outlives it in memory, erased or not."""

    def __init__(self) -> None:
        self.visitor = functools.lru_cache(maxsize=65_536)(hll.hash64)
        self.visit = functools.lru_cache(maxsize=65_536)(
            functools.partial(hll.hash64, person=b"amn-visits"))


def compute(connection: Connection, days: Iterable[date], tz: ZoneInfo) -> DayRollups:
    """The rollups of `days` from the raw rows (bots left out)."""
    out = DayRollups()
    sections = dict(connection.execute(select(Page.id, Page.section)).all())
    hashes = _Hashes()
    for first, last in _runs(days):
        _compute_run(connection, _Days(first, last, tz), sections, hashes, out)
    return out


def _compute_run(connection: Connection, days: _Days, sections: dict[int, str],
                 hashes: _Hashes, out: DayRollups) -> None:
    """Fold the rows of a run of days into `out`, as they stream from the database: the
    memory is bounded by the keys of the rollups (pages, referrers...), not by the traffic
    (a day of a million pageviews once took 200 MB here)."""
    start, end = days.starts[0], days.end
    # Pageviews by their own time: pages, engaged time, transitions.
    members: dict[tuple[date, int], tuple[hll.Builder, hll.Builder]] = {}
    rows = connection.execute(
        select(Pageview.ts, Pageview.page_id, Pageview.prev_page_id, Pageview.engaged_ms,
               Pageview.visit_id, Visit.visitor_id)
        .join(Visit, Visit.id == Pageview.visit_id)
        .where(Pageview.ts >= start, Pageview.ts < end, Visit.is_bot == false())
        .execution_options(yield_per=STREAM_ROWS))
    for ts, page_id, prev_page_id, engaged, visit_id, visitor_id in rows:
        day = days.of(ts)
        key = (day, page_id)
        agg = out.pages.get(key)
        if agg is None:
            agg = out.pages[key] = PageAgg()
            members[key] = (hll.Builder(), hll.Builder())
        engaged = engaged or 0
        agg.pageviews += 1
        agg.engaged_ms += engaged
        agg.buckets[duration_bucket(engaged)] += 1
        visitors, visits = members[key]
        visitors.add(hashes.visitor(visitor_id))
        visits.add(hashes.visit(visit_id))
        out.transitions[(day, prev_page_id or 0, page_id)] += 1
    for key, (visitors, visits) in members.items():
        agg = out.pages[key]
        agg.visitors = visitors.sketch()
        agg.visits = visits.sketch()
    # Visits by their start: summary, entry and exit pages, sources, durations, journeys.
    sketches: dict[tuple[date, str, str | None], hll.Builder] = defaultdict(hll.Builder)
    for visit, steps in _visits_with_steps(connection, start, end):
        _fold_visit(visit, steps, days.of(visit.started_at), sections,
                    hashes.visitor(visit.visitor_id), out, sketches)
    for key, builder in sketches.items():
        out.visits[key].visitors = builder.sketch()


def _fold_visit(visit: Any, steps: list[tuple[datetime, int, int]], day: date | None,
                sections: dict[int, str], visitor_hash: int, out: DayRollups,
                sketches: dict[tuple[date, str, str | None], hll.Builder]) -> None:
    n_views = visit.pageviews or 0
    last_engaged = max((ms for ts, _, ms in steps if ts == visit.last_seen_at), default=0)
    duration = round((visit.last_seen_at - visit.started_at).total_seconds() * 1000) \
        + last_engaged
    bucket = duration_bucket(duration)
    referrer, source, medium = visit.referrer_domain, visit.utm_source, visit.utm_medium
    for dim, value in (("total", None), ("entry", str(visit.entry_page_id)),
                       ("exit", str(visit.exit_page_id)), ("referrer", referrer),
                       ("utm_source", source), ("utm_medium", medium),
                       ("utm_campaign", visit.utm_campaign),
                       ("channel", _channel(referrer, source, medium))):
        key = (day, dim, value)
        agg = out.visits.get(key)
        if agg is None:
            agg = out.visits[key] = VisitAgg()
        agg.visits += 1
        agg.pageviews += n_views
        agg.bounces += n_views <= 1
        agg.duration_ms += duration
        agg.buckets[bucket] += 1
        if dim in SKETCHED_DIMS:
            sketches[key].add(visitor_hash)
    if steps:
        page_ids = [page_id for _, page_id, _ in steps]
        out.journeys[(day, "page", ",".join(journey_of(map(str, page_ids))))] += 1
        out.journeys[(day, "section", JOURNEY_SEP.join(
            journey_of(sections.get(p, "") for p in page_ids)))] += 1


_VISIT_COLUMNS = (Visit.id, Visit.visitor_id, Visit.started_at, Visit.last_seen_at,
                  Visit.entry_page_id, Visit.exit_page_id, Visit.pageviews,
                  Visit.referrer_domain, Visit.utm_source, Visit.utm_medium, Visit.utm_campaign)
_STEP_COLUMNS = (Pageview.ts, Pageview.page_id, Pageview.engaged_ms)


def _visits_with_steps(connection: Connection, start: datetime, end: datetime
                       ) -> Iterator[tuple[Any, list[tuple[datetime, int, int]]]]:
    """Each visit started in [start, end) (bots left out) with its pageviews (ts, page id,
    engaged ms) in order, one visit at a time.

    Pageviews are read by time, from a day before `start` (events slightly out of order
    join a visit) to the last visit's end, which on PostgreSQL touches only those
    partitions; a visit whose count falls short (an older straggler) is read again whole.
    """
    started = (Visit.started_at >= start, Visit.started_at < end, Visit.is_bot == false())
    until = connection.scalar(select(func.max(Visit.last_seen_at)).where(*started))
    if until is None:
        return
    in_window = ((Pageview.visit_id == Visit.id) & (Pageview.ts >= start - timedelta(days=1))
                 & (Pageview.ts <= until))
    rows = connection.execute(
        select(*_VISIT_COLUMNS, *_STEP_COLUMNS).outerjoin(Pageview, in_window).where(*started)
        .order_by(Visit.id, Pageview.ts, Pageview.id).execution_options(yield_per=STREAM_ROWS))
    short: list[int] = []
    for visit, steps in _grouped(rows):
        if len(steps) < (visit.pageviews or 0):
            short.append(visit.id)
        else:
            yield visit, steps
    for chunk in range(0, len(short), 500):
        yield from _grouped(connection.execute(
            select(*_VISIT_COLUMNS, *_STEP_COLUMNS).outerjoin(
                Pageview, Pageview.visit_id == Visit.id)
            .where(Visit.id.in_(short[chunk:chunk + 500]))
            .order_by(Visit.id, Pageview.ts, Pageview.id)))


def _grouped(rows: Iterable[Any]) -> Iterator[tuple[Any, list[tuple[datetime, int, int]]]]:
    """Rows of (visit columns..., ts, page id, engaged ms) ordered by visit, as
    (visit, its steps); a visit without pageviews has no steps."""
    width = len(_VISIT_COLUMNS)
    for _, group in itertools.groupby(rows, key=lambda row: row[0]):
        first = next(group)
        steps = [(row[width], row[width + 1], row[width + 2] or 0)
                 for row in itertools.chain((first,), group) if row[width] is not None]
        yield first, steps


# -- storing and refreshing ---------------------------------------------------------------


def _store(connection: Connection, days: Sequence[date], rollups: DayRollups) -> None:
    """Replace the rollups of `days` by `rollups` (never adds to what was there)."""
    for model in ROLLUP_TABLES:
        for chunk in range(0, len(days), 500):
            connection.execute(delete(model).where(model.day.in_(days[chunk:chunk + 500])))
    pages = [{"day": day, "page_id": page_id, "pageviews": a.pageviews,
              "engaged_ms": a.engaged_ms, **{f"e{i}": n for i, n in enumerate(a.buckets)},
              "visitors": hll.encode(a.visitors), "visits": hll.encode(a.visits)}
             for (day, page_id), a in rollups.pages.items()]
    visits = [{"day": day, "dim": dim, "key": key, "visits": a.visits,
               "pageviews": a.pageviews, "bounces": a.bounces, "duration_ms": a.duration_ms,
               **{f"d{i}": n for i, n in enumerate(a.buckets)},
               "visitors": hll.encode(a.visitors) if dim in SKETCHED_DIMS else None}
              for (day, dim, key), a in rollups.visits.items()]
    transitions = [{"day": day, "prev_page_id": prev, "page_id": page, "pageviews": n}
                   for (day, prev, page), n in rollups.transitions.items()]
    journeys = [{"day": day, "by": by, "journey": journey, "visits": n}
                for (day, by, journey), n in _top_journeys(rollups.journeys)]
    for model, rows in ((RollupPageDay, pages), (RollupVisitDay, visits),
                        (RollupTransitionDay, transitions), (RollupJourneyDay, journeys)):
        for chunk in range(0, len(rows), 5000):
            connection.execute(insert(model), rows[chunk:chunk + 5000])
    for month in sorted({_month(d) for d in days}):
        _store_month(connection, month)


def _top_journeys(journeys: Counter[tuple[date, str, str]]
                  ) -> list[tuple[tuple[date, str, str], int]]:
    """The JOURNEYS_PER_DAY most frequent journeys of each day (and `by`)."""
    per_day: dict[tuple[date, str], list[tuple[tuple[date, str, str], int]]] = defaultdict(list)
    for key, n in journeys.items():
        per_day[key[:2]].append((key, n))
    return [item for items in per_day.values()
            for item in sorted(items, key=lambda kv: (-kv[1], kv[0][2]))[:JOURNEYS_PER_DAY]]


def _month(day: date) -> date:
    return day.replace(day=1)


def _month_end(month: date) -> date:
    """The last day of the month starting on `month`."""
    return (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def _store_month(connection: Connection, month: date) -> None:
    """Replace a month's sketches by the union of its days' (after any of them changed)."""
    P, V = RollupPageDay, RollupVisitDay
    end = _month_end(month)
    unions: dict[tuple[str, str, str | None], int] = defaultdict(int)
    for page_id, visitors, visits in connection.execute(
            select(P.page_id, P.visitors, P.visits).where(P.day >= month, P.day <= end)):
        for dim, blob in (("visitors", visitors), ("visits", visits)):
            key = ("page", dim, str(page_id))
            unions[key] = hll.union(unions[key], hll.decode(blob))
    for dim, value, blob in connection.execute(
            select(V.dim, V.key, V.visitors).where(V.day >= month, V.day <= end,
                                                   V.visitors.is_not(None))):
        key = ("visit", dim, value)
        unions[key] = hll.union(unions[key], hll.decode(blob))
    connection.execute(delete(RollupSketchMonth).where(RollupSketchMonth.month == month))
    rows = [{"month": month, "source": source, "dim": dim, "key": value,
             "sketch": hll.encode(sketch)} for (source, dim, value), sketch in unions.items()]
    for chunk in range(0, len(rows), 5000):
        connection.execute(insert(RollupSketchMonth), rows[chunk:chunk + 5000])


def _state(connection: Connection) -> dict[str, str]:
    return dict(connection.execute(select(RollupState.key, RollupState.value)).all())


def _set_state(connection: Connection, **values: str) -> None:
    connection.execute(delete(RollupState).where(RollupState.key.in_(list(values))))
    connection.execute(insert(RollupState), [{"key": k, "value": v} for k, v in values.items()])


def _hour_days(hour: int, tz: ZoneInfo) -> set[date]:
    """The local days an UTC hour (hours since 1970) overlaps."""
    start = EPOCH + timedelta(hours=hour)
    return {local_date(start, tz), local_date(start + timedelta(hours=1, microseconds=-1), tz)}


class _Transaction:
    """One refresh transaction: consistent reads, exclusive among refreshers.

    PostgreSQL: REPEATABLE READ (every read, and the deletion of marks, see one snapshot)
    and a transaction-level advisory lock; SQLite: BEGIN IMMEDIATE (the write lock).
    """

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.acquired = False

    def __enter__(self) -> _Transaction:
        db.session.commit()
        postgres = db.engine.dialect.name == "postgresql"
        options = {"isolation_level": "REPEATABLE READ"} if postgres else {}
        connection = db.session.connection(execution_options=options)
        if postgres:
            self.acquired = bool(connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY}))
        else:
            raw = connection.connection.dbapi_connection
            if raw is not None and not raw.in_transaction:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            self.acquired = True
        self.connection = connection
        return self

    def __exit__(self, kind: Any, *rest: Any) -> None:
        if kind is None:
            db.session.commit()
        else:
            db.session.rollback()


@dataclass
class RefreshResult:
    days: int = 0  # days recomputed
    rebuilding: bool = False  # a rebuild is still under way (the budget ran out)
    complete: bool = False
    seconds: float = 0.0
    skipped: bool = False  # another process was refreshing


def refresh(*, timezone: str | None = None, budget_seconds: float | None = None,
            rebuild_chunk_days: int = REBUILD_CHUNK_DAYS,
            progress: Callable[[str], None] | None = None) -> RefreshResult:
    """Bring the rollups up to date (idempotent; safe while the collector writes).

    With a budget, stops after the transaction that exceeds it; call again to go on.
    """
    began = time.monotonic()
    tz_name = timezone or current_app.config["TRACKER_TIMEZONE"]
    tz = zone(tz_name)
    result = RefreshResult()

    def over_budget() -> bool:
        return budget_seconds is not None and time.monotonic() - began > budget_seconds

    with db.engine.begin() as connection:
        install_triggers(connection)  # before reading anything: every later change is marked
    while True:
        with _Transaction() as tx:
            if not tx.acquired:
                result.skipped = True
                break
            assert tx.connection is not None
            state = _state(tx.connection)
            if state.get("timezone") != tz_name or "complete" not in state:
                _start_rebuild(tx.connection, tz_name, tz)
                continue
            if state["complete"] != "1":
                done = _rebuild_chunk(tx.connection, state, tz, rebuild_chunk_days)
            else:
                done = _refresh_chunk(tx.connection, tz)
                if not done:
                    result.complete = True
                    break
            result.days += done
        if progress:
            progress(f"  rollups: {result.days} days computed")
        if over_budget():
            break
    with db.engine.connect() as connection:
        result.complete = _state(connection).get("complete") == "1"
    result.rebuilding = not result.complete
    result.seconds = time.monotonic() - began
    return result


def _start_rebuild(connection: Connection, tz_name: str, tz: ZoneInfo) -> None:
    """Forget every rollup and plan a rebuild of all days holding data."""
    for model in (*ROLLUP_TABLES, RollupSketchMonth):
        connection.execute(delete(model))
    # Marks visible now are covered by the rebuild, which reads later (REPEATABLE READ: a
    # mark committed after this snapshot is not deleted).
    connection.execute(delete(RollupDirty))
    first = min(filter(None, (connection.scalar(select(func.min(Visit.started_at))),
                              connection.scalar(select(func.min(Pageview.ts))))), default=None)
    last = max(filter(None, (connection.scalar(select(func.max(Visit.started_at))),
                             connection.scalar(select(func.max(Pageview.ts))))), default=None)
    if first is None or last is None:
        _set_state(connection, timezone=tz_name, complete="1", next="", last="")
        return
    _set_state(connection, timezone=tz_name, complete="0",
               next=local_date(first, tz).isoformat(), last=local_date(last, tz).isoformat())
    log.info("rollups: rebuilding from %s to %s", local_date(first, tz), local_date(last, tz))


def _rebuild_chunk(connection: Connection, state: dict[str, str], tz: ZoneInfo,
                   chunk_days: int) -> int:
    first, last = date.fromisoformat(state["next"]), date.fromisoformat(state["last"])
    days = [first + timedelta(days=n)
            for n in range(min(max(chunk_days, 1), (last - first).days + 1))]
    _store(connection, days, compute(connection, days, tz))
    following = days[-1] + timedelta(days=1)
    if following > last:
        _set_state(connection, complete="1", next="")
    else:
        _set_state(connection, next=following.isoformat())
    return len(days)


def _refresh_chunk(connection: Connection, tz: ZoneInfo) -> int:
    """Recompute the earliest marked days; delete the marks fully covered. Days done."""
    hours = connection.scalars(select(RollupDirty.hour).distinct()).all()
    if not hours:
        return 0
    days_of = {h: _hour_days(h, tz) for h in hours}
    # At least two days, so an hour spanning two days always gets done.
    chunk = sorted(set().union(*days_of.values()))[:max(CHUNK_DAYS, 2)]
    done = set(chunk)
    _store(connection, chunk, compute(connection, chunk, tz))
    covered = [h for h, days in days_of.items() if days <= done]
    for start in range(0, len(covered), 500):
        connection.execute(delete(RollupDirty).where(
            RollupDirty.hour.in_(covered[start:start + 500])))
    return len(chunk)


def invalidate() -> None:
    """Make the next refresh rebuild everything (the section rules changed)."""
    with db.engine.begin() as connection:
        connection.execute(delete(RollupState).where(RollupState.key == "complete"))


# When each app (by import name) may refresh next.
_next_refresh: dict[str, float] = {}
# A refresh recomputes whole days, so on a busy day it costs more: wait at least this many
# times its duration before the next, so that it never takes more than a tenth of the
# drainer's time (reports read the pending days raw meanwhile: exact, only slower).
REFRESH_SPACING = 10


def maybe_refresh(budget_seconds: float = 2.0) -> RefreshResult | None:
    """For the drainer's loop: refresh at most every REFRESH_INTERVAL (or REFRESH_SPACING
    times the last refresh's duration, if longer), within a budget.

    Needs an app context. Returns None when it was not time yet.
    """
    now = time.monotonic()
    key = current_app.import_name
    if now < _next_refresh.get(key, -1e18):
        return None
    _next_refresh[key] = now + REFRESH_INTERVAL.total_seconds()
    result = refresh(budget_seconds=budget_seconds)
    _next_refresh[key] = now + max(REFRESH_INTERVAL.total_seconds(),
                                   REFRESH_SPACING * result.seconds)
    return result


# -- reading: what a report may take from the rollups ---------------------------------------


@dataclass
class Plan:
    """Where one period's figures come from: stored rollups for its clean days, rollups
    computed now from the raw rows for its pending days (`fresh`)."""

    period: DateRange
    tz: ZoneInfo
    pending: list[date]
    _fresh: DayRollups | None = None

    def fresh(self) -> DayRollups:
        if self._fresh is None:
            self._fresh = compute(db.session.connection(), self.pending, self.tz) \
                if self.pending else DayRollups()
        return self._fresh

    def stored(self, model: Any, *, outside_months: bool = False) -> list[Any]:
        """WHERE clauses selecting the stored rollups of the period's clean days (but those
        of `months()`, when `outside_months`)."""
        conditions = [model.day >= self.period.start, model.day <= self.period.end]
        if self.pending:
            conditions.append(not_(model.day.in_(self.pending)))
        months = self.months() if outside_months else []
        if months:
            conditions.append(not_(or_(*(model.day.between(m, _month_end(m))
                                         for m in months))))
        return conditions

    def months(self) -> list[date]:
        """Whole months of the period without a pending day: their sketches are merged."""
        out = []
        month = _month(self.period.start)
        if month < self.period.start:
            month = _month(_month_end(month) + timedelta(days=1))
        pending = set(self.pending)
        while _month_end(month) <= self.period.end:
            end = _month_end(month)
            if not any(month <= d <= end for d in pending):
                out.append(month)
            month = end + timedelta(days=1)
        return out


def _pending_days(tz: ZoneInfo, period: DateRange) -> list[date]:
    hours = db.session.scalars(select(RollupDirty.hour).distinct()).all()
    days: set[date] = set()
    for hour in hours:
        days |= _hour_days(hour, tz)
    return sorted(d for d in days if period.start <= d <= period.end)


def plan(query: ReportQuery, period: DateRange | None = None) -> Plan | None:
    """A plan to answer `period` (default: the query's range) from rollups, or None when the
    raw rows must answer: asked so, filters set, another time zone, rollups incomplete, or
    (source "auto") a range too small to need them."""
    if query.source == "raw" or query.filters.active():
        return None
    period = period or query.range
    state = dict(db.session.execute(select(RollupState.key, RollupState.value)).all())
    if state.get("complete") != "1" or state.get("timezone") != query.timezone:
        return None
    tz = query.tz
    pending = _pending_days(tz, period)
    result = Plan(period, tz, pending)
    if query.source == "rollups":
        return result
    covered = db.session.scalar(
        select(func.coalesce(func.sum(RollupVisitDay.visits), 0))
        .where(RollupVisitDay.dim == "total", *result.stored(RollupVisitDay))) or 0
    if covered < MIN_VISITS:
        return None
    if pending:  # pending days are computed in memory: only worth it while they are few
        start, end = local_midnight_utc(pending[0], tz), \
            local_midnight_utc(pending[-1] + timedelta(days=1), tz)
        fresh = db.session.scalar(select(func.count(Visit.id)).where(
            Visit.started_at >= start, Visit.started_at < end)) or 0
        if fresh > covered:
            return None
    return result


def pages(p: Plan, *, sketches: Sequence[str] = (), by_day: bool = False
          ) -> dict[Any, PageAgg]:
    """Page figures of the period, by page id (or by (day, page id)); `sketches` names the
    distinct counts wanted ("visitors", "visits")."""
    R = RollupPageDay
    out: dict[Any, PageAgg] = defaultdict(PageAgg)
    keys: list[Any] = [R.day, R.page_id] if by_day else [R.page_id]
    sums = [func.sum(R.pageviews), func.sum(R.engaged_ms),
            *[func.sum(getattr(R, f"e{i}")) for i in range(N_BUCKETS)]]
    for row in db.session.execute(select(*keys, *sums).where(*p.stored(R)).group_by(*keys)):
        key = tuple(row[:len(keys)]) if by_day else row[0]
        values = [int(v or 0) for v in row[len(keys):]]
        agg = out[key]
        agg.pageviews += values[0]
        agg.engaged_ms += values[1]
        agg.buckets = [a + b for a, b in zip(agg.buckets, values[2:], strict=True)]
    for name in sketches:
        column = getattr(R, name)
        for *key, blob in db.session.execute(
                select(*keys, column).where(*p.stored(R, outside_months=not by_day))):
            agg = out[tuple(key) if by_day else key[0]]
            setattr(agg, name, hll.union(getattr(agg, name), hll.decode(blob)))
    if sketches and not by_day and p.months():
        M = RollupSketchMonth
        for name, key, blob in db.session.execute(
                select(M.dim, M.key, M.sketch).where(M.month.in_(p.months()), M.source == "page",
                                                     M.dim.in_(list(sketches)))):
            agg = out[int(key or 0)]
            setattr(agg, name, hll.union(getattr(agg, name), hll.decode(blob)))
    for (day, page_id), agg in p.fresh().pages.items():
        out[(day, page_id) if by_day else page_id].add(agg)
    return dict(out)


def visits(p: Plan, dims: Sequence[str], *, sketches: bool = False, by_day: bool = False
           ) -> dict[Any, VisitAgg]:
    """Visit figures of the period by (dim, key), or by (day, dim, key)."""
    R = RollupVisitDay
    out: dict[Any, VisitAgg] = defaultdict(VisitAgg)
    keys: list[Any] = [R.day, R.dim, R.key] if by_day else [R.dim, R.key]
    sums = [func.sum(R.visits), func.sum(R.pageviews), func.sum(R.bounces),
            func.sum(R.duration_ms), *[func.sum(getattr(R, f"d{i}")) for i in range(N_BUCKETS)]]
    where = [*p.stored(R), R.dim.in_(list(dims))]
    for row in db.session.execute(select(*keys, *sums).where(*where).group_by(*keys)):
        values = [int(v or 0) for v in row[len(keys):]]
        agg = out[tuple(row[:len(keys)])]
        agg.visits += values[0]
        agg.pageviews += values[1]
        agg.bounces += values[2]
        agg.duration_ms += values[3]
        agg.buckets = [a + b for a, b in zip(agg.buckets, values[4:], strict=True)]
    if sketches:
        outside = [*p.stored(R, outside_months=not by_day), R.dim.in_(list(dims))]
        for *key, blob in db.session.execute(
                select(*keys, R.visitors).where(*outside, R.visitors.is_not(None))):
            agg = out[tuple(key)]
            agg.visitors = hll.union(agg.visitors, hll.decode(blob))
    if sketches and not by_day:
        for key, sketch in _month_sketches(p, lambda dim, _key: dim.in_(list(dims))):
            agg = out[key]
            agg.visitors = hll.union(agg.visitors, sketch)
    for (day, dim, key), agg in p.fresh().visits.items():
        if dim in dims:
            out[(day, dim, key) if by_day else (dim, key)].add(agg)
    return dict(out)


def visitors_of(p: Plan, wanted: Mapping[str, Collection[str]]) -> dict[tuple[str, str], int]:
    """The visitor sketches of the period for some keys only, by (dim, key): a report that
    shows the top of a long list (referrers) reads the sketches of those rows, not of all."""
    R = RollupVisitDay
    out: dict[tuple[str, str], int] = defaultdict(int)

    def chosen(dim_column: Any, key_column: Any) -> Any:
        return or_(false(), *((dim_column == dim) & key_column.in_(list(keys))
                              for dim, keys in wanted.items() if keys))

    for dim, key, blob in db.session.execute(
            select(R.dim, R.key, R.visitors).where(*p.stored(R, outside_months=True),
                                                   chosen(R.dim, R.key),
                                                   R.visitors.is_not(None))):
        out[(dim, key)] = hll.union(out[(dim, key)], hll.decode(blob))
    for key, sketch in _month_sketches(p, chosen):
        out[key] = hll.union(out[key], sketch)
    for (_, dim, key), agg in p.fresh().visits.items():
        if key in wanted.get(dim, ()):
            out[(dim, key)] = hll.union(out[(dim, key)], agg.visitors)
    return dict(out)


def _month_sketches(p: Plan, where: Callable[[Any, Any], Any]
                    ) -> Iterator[tuple[tuple[str, str | None], int]]:
    """The visit sketches of the period's whole months, by (dim, key), where
    `where(dim column, key column)` holds."""
    if not p.months():
        return
    M = RollupSketchMonth
    for dim, key, blob in db.session.execute(
            select(M.dim, M.key, M.sketch).where(M.month.in_(p.months()), M.source == "visit",
                                                 where(M.dim, M.key))):
        yield (dim, key), hll.decode(blob)


def transitions(p: Plan, touching: Collection[int]) -> Counter[tuple[int, int]]:
    """Pageviews of the period by (previous page id or 0, page id), for the moves from or to
    the pages `touching` (a flow's focus: the database sums only those)."""
    R = RollupTransitionDay
    ids = list(touching)
    out: Counter[tuple[int, int]] = Counter()
    for prev, page, n in db.session.execute(
            select(R.prev_page_id, R.page_id, func.sum(R.pageviews))
            .where(*p.stored(R), R.page_id.in_(ids) | R.prev_page_id.in_(ids))
            .group_by(R.prev_page_id, R.page_id)):
        out[(prev, page)] += int(n or 0)
    wanted = set(ids)
    for (_, prev, page), n in p.fresh().transitions.items():
        if page in wanted or prev in wanted:
            out[(prev, page)] += n
    return out


def journeys(p: Plan, by: str) -> Counter[tuple[str, ...]]:
    """Visits started in the period by journey; page journeys name pages by id."""
    R = RollupJourneyDay
    out: Counter[str] = Counter()
    for journey, n in db.session.execute(
            select(R.journey, func.sum(R.visits)).where(*p.stored(R), R.by == by)
            .group_by(R.journey)):
        out[journey] += int(n or 0)
    for (_, by_, journey), n in p.fresh().journeys.items():
        if by_ == by:
            out[journey] += n
    sep = "," if by == "page" else JOURNEY_SEP
    return Counter({tuple(journey.split(sep)): n for journey, n in out.items()})


def any_pending(connection: Connection | None = None) -> bool:
    """Whether some change still waits for a refresh."""
    connection = connection or db.session.connection()
    return connection.scalar(select(RollupDirty.id).limit(1)) is not None


__all__ = ["MIN_VISITS", "Plan", "RefreshResult", "compute", "invalidate", "maybe_refresh",
           "plan", "refresh"]
