"""The staff reports: aggregates over visits, pageviews and consents. All their SQL is here.

Each report is one function taking a `ReportQuery` and returning a `Report` of plain tables;
`run` dispatches by name. A faster implementation (rollup tables) can replace any of them
behind the same signature. The SQL runs on SQLite and PostgreSQL alike.

Definitions the tests check against the raw rows:
- bots are left out of every report;
- a visit is in a range when it started there, a pageview by its own time, a consent by the
  time it was given; ranges are whole days in the site's time zone;
- source, browser, device and country filters select visits; page and section filters select
  pageviews in the pageview figures, and visits having such a pageview in the visit figures;
- a visit's duration is from its first to its last pageview plus the engaged time of the
  last one; a bounce is a visit of one pageview.
No figure names an individual: no IP address, visitor id or DNS name leaves this module.

Overview, sections, pages, flows, duration and sources read the rollups
(tracker.services.rollups) when `rollups.plan` says they can answer: no filter set, the
rollups' time zone, and a range large enough to need them; their distinct counts
(visitors, and visits per section) are then HyperLogLog estimates. Otherwise, and for the
other reports, the raw rows answer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    desc,
    distinct,
    exists,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.orm import aliased

from tracker.clock import utcnow
from tracker.domain import hll
from tracker.domain.reports import (
    BUCKET_FORMATS,
    DIRECT,
    DURATION_BOUNDS,
    DURATION_LABELS,
    EXIT,
    MIN_NETWORK_VISITORS,
    TRUNCATED,
    Column,
    DateRange,
    Filters,
    Report,
    ReportError,
    ReportQuery,
    Table,
    assemble_flow,
    bucket_labels,
    change,
    channel,
    journeys,
    layout_flow,
    minute_label,
    offset_segments,
    ratio,
    search_engine,
    table,
    top_journeys,
)
from tracker.domain.visits import SectionRule, section_of
from tracker.enrich import registrable_domain
from tracker.extensions import db
from tracker.models import Consent, Page, Pageview, Visit
from tracker.services import rollups
from tracker.services.demo_data import DEMO_BANNER_SHA256
from tracker.services.rollups import Plan

V, PV, P = Visit, Pageview, Page
REALTIME_WINDOW = timedelta(minutes=5)
REALTIME_SERIES = timedelta(minutes=30)
GLANCE_ROWS = 5
UNKNOWN = "(unknown)"

# -- SQL building blocks ----------------------------------------------------------------


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _elapsed_ms(start: Any, end: Any) -> ColumnElement[int]:
    """Whole milliseconds from `start` to `end` (timestamps)."""
    if _dialect() == "sqlite":  # integer microseconds (tracker.models.types.Timestamp)
        return cast(func.round((type_coerce(end, BigInteger) - type_coerce(start, BigInteger))
                               / 1000.0), BigInteger)
    return cast(func.round(func.extract("epoch", end - start) * 1000), BigInteger)


def _visit_duration_ms() -> ColumnElement[int]:
    """First to last pageview, plus the engaged time of the last (what a bounce lasted)."""
    last = aliased(Pageview)
    last_engaged = (select(func.coalesce(func.max(last.engaged_ms), 0))
                    .where(last.visit_id == V.id, last.ts == V.last_seen_at)
                    .scalar_subquery())
    return _elapsed_ms(V.started_at, V.last_seen_at) + last_engaged


def _local_bucket(column: Any, granularity: str, tz: ZoneInfo, start: datetime,
                  end: datetime) -> ColumnElement[str]:
    """The label of the site-local time bucket of a naive-UTC timestamp column.

    The offset pieces are our own integers, written into the SQL as constants.
    """
    segments = offset_segments(tz, start, end)
    if _dialect() == "sqlite":
        def offset(seconds: int) -> Any:
            return literal_column(f"'{int(seconds):+d} seconds'")
    else:
        def offset(seconds: int) -> Any:
            return literal_column(f"{int(seconds)}")
    shift = offset(segments[-1][1])
    if len(segments) > 1:
        shift = case(*[(column < until, offset(seconds)) for until, seconds in segments[:-1]],
                     else_=shift)
    if _dialect() == "sqlite":
        # Integer microseconds (tracker.models.types.Timestamp) to seconds, then a time.
        seconds = type_coerce(column, BigInteger) / literal_column("1000000")
        if granularity == "week":
            return func.date(seconds, "unixepoch", shift, "weekday 0", "-6 days")
        return func.strftime(BUCKET_FORMATS[granularity], seconds, "unixepoch", shift)
    local = column + shift * literal_column("INTERVAL '1 second'")
    if granularity == "week":
        return func.to_char(func.date_trunc("week", local), "YYYY-MM-DD")
    pg_formats = {"hour": "YYYY-MM-DD HH24:00", "day": "YYYY-MM-DD", "month": "YYYY-MM"}
    return func.to_char(local, pg_formats[granularity])


def _duration_bucket(ms: Any) -> ColumnElement[int]:
    """Index into DURATION_LABELS of a duration in milliseconds (constants, no parameters)."""
    return case(*[(ms < literal_column(str(bound * 1000)), literal_column(str(index)))
                  for index, bound in enumerate(DURATION_BOUNDS)],
                else_=literal_column(str(len(DURATION_BOUNDS))))


def _pages_matching(filters: Filters) -> list[ColumnElement[bool]]:
    """Conditions on a pageview's page for the page and section filters."""
    conditions = []
    if filters.page is not None:
        conditions.append(PV.page_id.in_(select(P.id).where(P.path == filters.page)))
    if filters.section is not None:
        conditions.append(PV.page_id.in_(select(P.id).where(P.section == filters.section)))
    return conditions


def _visit_filters(filters: Filters, *, with_pages: bool = True) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [V.is_bot == false()]
    if filters.browser is not None:
        conditions.append(V.browser == filters.browser)
    if filters.device is not None:
        conditions.append(V.device == filters.device)
    if filters.country is not None:
        conditions.append(V.country == filters.country)
    if filters.source is not None:
        if filters.source == DIRECT:
            conditions.append(and_(V.referrer_domain.is_(None), V.utm_source.is_(None)))
        else:
            conditions.append(or_(V.referrer_domain == filters.source,
                                  V.utm_source == filters.source))
    if with_pages and not filters.visit_level:
        inner = aliased(Pageview)
        page_ids = select(P.id)
        if filters.page is not None:
            page_ids = page_ids.where(P.path == filters.page)
        if filters.section is not None:
            page_ids = page_ids.where(P.section == filters.section)
        conditions.append(exists().where(inner.visit_id == V.id, inner.page_id.in_(page_ids)))
    return conditions


class _Scope:
    """The UTC bounds of one period and the WHERE clauses of visits and pageviews in it."""

    def __init__(self, query: ReportQuery, period: DateRange | None = None) -> None:
        self.query = query
        self.period = period or query.range
        self.tz = query.tz
        self.start, self.end = self.period.utc_bounds(self.tz)

    def visits(self) -> list[ColumnElement[bool]]:
        """Visits started in the period, matching every filter."""
        return [V.started_at >= self.start, V.started_at < self.end,
                *_visit_filters(self.query.filters)]

    def pageviews(self) -> list[ColumnElement[bool]]:
        """Pageviews in the period: visit filters on their visit, page filters on themselves."""
        return [PV.ts >= self.start, PV.ts < self.end,
                *_visit_filters(self.query.filters, with_pages=False),
                *_pages_matching(self.query.filters)]

    def pageviews_in_visits(self) -> list[ColumnElement[bool]]:
        """Pageviews in the period of visits matching every filter (for flows)."""
        return [PV.ts >= self.start, PV.ts < self.end, *_visit_filters(self.query.filters)]

    def bucket(self, column: Any) -> ColumnElement[str]:
        return _local_bucket(column, self.query.granularity, self.tz, self.start, self.end)


def _pageviews_from() -> Select[Any]:
    return select().select_from(PV).join(V, V.id == PV.visit_id)


def _int(value: Any) -> int:
    return int(value or 0)


def _seconds(ms: Any) -> float | None:
    return None if ms is None else round(float(ms) / 1000, 1)


# -- shared aggregates ------------------------------------------------------------------


def _summary(query: ReportQuery, period: DateRange) -> dict[str, Any]:
    scope = _Scope(query, period)
    visits = db.session.execute(
        select(func.count(V.id), func.count(distinct(V.visitor_id)),
               func.sum(V.pageviews),
               func.sum(case((V.pageviews <= 1, 1), else_=0)),
               func.avg(_visit_duration_ms()))
        .where(*scope.visits())
    ).one()
    pageviews = db.session.execute(
        _pageviews_from().add_columns(func.count(PV.id), func.avg(PV.engaged_ms))
        .where(*scope.pageviews())
    ).one()
    n_visits = _int(visits[0])
    return {
        "visitors": _int(visits[1]),
        "visits": n_visits,
        "pageviews": _int(pageviews[0]),
        "pages_per_visit": ratio(_int(visits[2]), n_visits),
        "bounce_rate": ratio(_int(visits[3]), n_visits),
        "avg_visit_duration_s": _seconds(visits[4]),
        "avg_engaged_per_page_s": _seconds(pageviews[1]),
    }


SUMMARY_METRICS = ("visitors", "visits", "pageviews", "pages_per_visit", "bounce_rate",
                   "avg_visit_duration_s", "avg_engaged_per_page_s")
METRIC_KINDS = {"visitors": "int", "visits": "int", "pageviews": "int",
                "pages_per_visit": "number", "bounce_rate": "rate",
                "avg_visit_duration_s": "seconds", "avg_engaged_per_page_s": "seconds"}


def _series(query: ReportQuery) -> list[dict[str, Any]]:
    scope = _Scope(query)
    visits = (select(scope.bucket(V.started_at).label("bucket"),
                     V.visitor_id.label("visitor"), V.pageviews.label("depth"),
                     _visit_duration_ms().label("duration"))
              .where(*scope.visits()).subquery())
    by_bucket: dict[str, dict[str, Any]] = {}
    for row in db.session.execute(
        select(visits.c.bucket, func.count(), func.count(distinct(visits.c.visitor)),
               func.sum(case((visits.c.depth <= 1, 1), else_=0)), func.avg(visits.c.duration))
        .group_by(visits.c.bucket)
    ):
        by_bucket[row[0]] = {"visits": _int(row[1]), "visitors": _int(row[2]),
                             "bounce_rate": ratio(_int(row[3]), _int(row[1])),
                             "avg_visit_duration_s": _seconds(row[4])}
    pageviews = (_pageviews_from().add_columns(scope.bucket(PV.ts).label("bucket"))
                 .where(*scope.pageviews()).subquery())
    views = dict(db.session.execute(
        select(pageviews.c.bucket, func.count()).group_by(pageviews.c.bucket)).all())
    rows = []
    for label in bucket_labels(query.range, query.granularity, scope.tz):
        row = {"bucket": label, "visitors": 0, "visits": 0, "pageviews": _int(views.get(label)),
               "bounce_rate": None, "avg_visit_duration_s": None}
        row.update(by_bucket.get(label, {}))
        rows.append(row)
    return rows


def _visit_duration_buckets(query: ReportQuery, by_entry_section: bool = False
                            ) -> list[tuple[str | None, int, int]]:
    """(entry section or None, bucket index, visits)."""
    scope = _Scope(query)
    columns: list[Any] = [_duration_bucket(_visit_duration_ms()).label("bucket")]
    inner = select(*columns).where(*scope.visits())
    if by_entry_section:
        inner = (inner.add_columns(P.section.label("section"))
                 .join(P, P.id == V.entry_page_id))
    sub = inner.subquery()
    keys = [sub.c.section] if by_entry_section else []
    rows = db.session.execute(
        select(*keys, sub.c.bucket, func.count()).group_by(*keys, sub.c.bucket)).all()
    if by_entry_section:
        return [(r[0], _int(r[1]), _int(r[2])) for r in rows]
    return [(None, _int(r[0]), _int(r[1])) for r in rows]


def _engaged_buckets(query: ReportQuery) -> list[tuple[str, int, int, int]]:
    """(section, bucket index, pageviews, engaged ms) of pageviews."""
    scope = _Scope(query)
    sub = (_pageviews_from().join(P, P.id == PV.page_id)
           .add_columns(P.section.label("section"),
                        _duration_bucket(PV.engaged_ms).label("bucket"),
                        PV.engaged_ms.label("engaged"))
           .where(*scope.pageviews()).subquery())
    rows = db.session.execute(
        select(sub.c.section, sub.c.bucket, func.count(), func.sum(sub.c.engaged))
        .group_by(sub.c.section, sub.c.bucket)).all()
    return [(r[0], _int(r[1]), _int(r[2]), _int(r[3])) for r in rows]


def _distribution(counts: dict[int, int]) -> list[dict[str, Any]]:
    total = sum(counts.values())
    return [{"duration": label, "count": counts.get(i, 0),
             "share": ratio(counts.get(i, 0), total)}
            for i, label in enumerate(DURATION_LABELS)]


def _section_rows(query: ReportQuery, limit: int | None) -> list[dict[str, Any]]:
    scope = _Scope(query)
    pageviews = func.count(PV.id).label("pageviews")
    rows = db.session.execute(
        _pageviews_from().join(P, P.id == PV.page_id)
        .add_columns(P.section, pageviews, func.count(distinct(V.visitor_id)),
                     func.count(distinct(PV.visit_id)), func.sum(PV.engaged_ms))
        .where(*scope.pageviews()).group_by(P.section).order_by(desc(pageviews), P.section)
    ).all()
    entries = dict(db.session.execute(
        select(P.section, func.count(V.id)).select_from(V).join(P, P.id == V.entry_page_id)
        .where(*scope.visits()).group_by(P.section)).all())
    total = sum(_int(r[1]) for r in rows)
    out = [{"section": r[0], "visitors": _int(r[2]), "visits": _int(r[3]),
            "pageviews": _int(r[1]), "share": ratio(_int(r[1]), total),
            "entries": _int(entries.get(r[0])), "engaged_s": _seconds(r[4]),
            "avg_engaged_s": _seconds(ratio(_int(r[4]), _int(r[1])))} for r in rows]
    return out if limit is None else out[:limit]


SECTION_COLUMNS = (Column("section", "text", drill="section"), Column("visitors"),
                   Column("visits"), Column("pageviews"), Column("share", "rate"),
                   Column("entries"), Column("engaged_s", "seconds"),
                   Column("avg_engaged_s", "seconds"))


def _journey_rows(query: ReportQuery, by: str, limit: int) -> list[dict[str, Any]]:
    scope = _Scope(query)
    label = P.path if by == "page" else P.section
    steps = db.session.execute(
        _pageviews_from().join(P, P.id == PV.page_id).add_columns(PV.visit_id, label)
        .where(*scope.visits()).order_by(PV.visit_id, PV.ts, PV.id)
    )
    return [{"journey": list(path), "visits": count}
            for path, count in journeys(steps, limit=limit)]


# -- the same aggregates from the rollups (tracker.services.rollups) ----------------------


def _summary_from(plan: Plan) -> dict[str, Any]:
    total = rollups.visits(plan, ["total"], sketches=True).get(("total", None))
    total = total or rollups.VisitAgg()
    views = rollups.pages(plan)
    pageviews = sum(a.pageviews for a in views.values())
    engaged = sum(a.engaged_ms for a in views.values())
    return {
        "visitors": hll.count(total.visitors),
        "visits": total.visits,
        "pageviews": pageviews,
        "pages_per_visit": ratio(total.pageviews, total.visits),
        "bounce_rate": ratio(total.bounces, total.visits),
        "avg_visit_duration_s": _seconds(ratio(total.duration_ms, total.visits)),
        "avg_engaged_per_page_s": _seconds(ratio(engaged, pageviews)),
    }


def _day_label(day: Any, granularity: str) -> str:
    if granularity == "week":
        day = day - timedelta(days=day.weekday())
    return day.strftime(BUCKET_FORMATS[granularity])


def _series_from(query: ReportQuery, plan: Plan) -> list[dict[str, Any]]:
    """The series by day, week or month (hours are not rolled up)."""
    buckets: dict[str, Any] = defaultdict(rollups.VisitAgg)
    for (day, _, _), agg in rollups.visits(plan, ["total"], sketches=True, by_day=True).items():
        buckets[_day_label(day, query.granularity)].add(agg)
    views: dict[str, int] = Counter()
    for (day, _), agg in rollups.pages(plan, by_day=True).items():
        views[_day_label(day, query.granularity)] += agg.pageviews
    rows = []
    for label in bucket_labels(query.range, query.granularity, query.tz):
        agg = buckets.get(label)
        rows.append({"bucket": label, "pageviews": views.get(label, 0),
                     "visitors": hll.count(agg.visitors) if agg else 0,
                     "visits": agg.visits if agg else 0,
                     "bounce_rate": ratio(agg.bounces, agg.visits) if agg else None,
                     "avg_visit_duration_s": _seconds(ratio(agg.duration_ms, agg.visits))
                     if agg else None})
    return rows


def _section_rows_from(plan: Plan, limit: int | None) -> list[dict[str, Any]]:
    info = _page_info()
    sections: dict[str, rollups.PageAgg] = defaultdict(rollups.PageAgg)
    for page_id, agg in rollups.pages(plan, sketches=("visitors", "visits")).items():
        if agg.pageviews:
            sections[info[page_id][1]].add(agg)
    entries: dict[str, int] = Counter()
    for (_, key), agg in rollups.visits(plan, ["entry"]).items():
        entries[info[int(key)][1]] += agg.visits
    total = sum(a.pageviews for a in sections.values())
    out = [{"section": s, "visitors": hll.count(a.visitors), "visits": hll.count(a.visits),
            "pageviews": a.pageviews, "share": ratio(a.pageviews, total),
            "entries": entries.get(s, 0), "engaged_s": _seconds(a.engaged_ms),
            "avg_engaged_s": _seconds(ratio(a.engaged_ms, a.pageviews))}
           for s, a in sorted(sections.items(), key=lambda kv: (-kv[1].pageviews, kv[0]))]
    return out if limit is None else out[:limit]


def _journey_rows_from(plan: Plan, by: str, limit: int) -> list[dict[str, Any]]:
    counts = rollups.journeys(plan, by)
    if by == "page":
        paths = {str(page_id): path for page_id, (path, _, _) in _page_info().items()}
        named: dict[tuple[str, ...], int] = Counter()
        for journey, count in counts.items():
            named[tuple(step if step in (TRUNCATED, EXIT) else paths[step]
                        for step in journey)] += count
        counts = Counter(named)
    return [{"journey": list(path), "visits": count}
            for path, count in top_journeys(counts, limit)]


def _visit_duration_buckets_from(plan: Plan) -> list[tuple[str | None, int, int]]:
    info = _page_info()
    return [(info[int(key)][1], bucket, count)
            for (_, key), agg in rollups.visits(plan, ["entry"]).items()
            for bucket, count in enumerate(agg.buckets) if count]


def _engaged_buckets_from(plan: Plan) -> list[tuple[str, int, int, int]]:
    info = _page_info()
    rows = []
    for page_id, agg in rollups.pages(plan).items():
        for bucket, count in enumerate(agg.buckets):
            if count:
                rows.append((info[page_id][1], bucket, count, 0))
        rows.append((info[page_id][1], 0, 0, agg.engaged_ms))
    return rows


# -- the reports ------------------------------------------------------------------------


def overview(query: ReportQuery) -> Report:
    """Headline figures against the previous period, a time series, and the three questions
    at a glance: popular sections, where visitors go, how long they stay."""
    plan = rollups.plan(query)
    period = query.range.previous()
    previous_plan = None if plan is None else rollups.plan(query, period)
    current = _summary(query, query.range) if plan is None else _summary_from(plan)
    previous = _summary(query, period) if previous_plan is None else _summary_from(previous_plan)
    summary = [{"metric": m, "value": current[m], "previous": previous[m],
                "change": change(current[m], previous[m])} for m in SUMMARY_METRICS]
    durations: dict[int, int] = Counter()
    if plan is None:
        for _, bucket, count in _visit_duration_buckets(query):
            durations[bucket] += count
    else:
        total = rollups.visits(plan, ["total"]).get(("total", None))
        durations.update(dict(enumerate(total.buckets)) if total else {})
    tables = {
        "summary": table("summary", (Column("metric", "text"), Column("value", "number"),
                                     Column("previous", "number"),
                                     Column("change", "change")), summary),
        "series": table("series", (Column("bucket", "text"), Column("visitors"),
                                   Column("visits"), Column("pageviews"),
                                   Column("bounce_rate", "rate"),
                                   Column("avg_visit_duration_s", "seconds")),
                        _series(query) if plan is None or query.granularity == "hour"
                        else _series_from(query, plan)),
        "top_sections": table("top_sections", SECTION_COLUMNS[:5],
                              _section_rows(query, GLANCE_ROWS) if plan is None
                              else _section_rows_from(plan, GLANCE_ROWS)),
        "journeys": table("journeys", (Column("journey", "path"), Column("visits")),
                          _journey_rows(query, "section", GLANCE_ROWS) if plan is None
                          else _journey_rows_from(plan, "section", GLANCE_ROWS)),
        "visit_durations": table("visit_durations", DISTRIBUTION_COLUMNS,
                                 _distribution(durations)),
    }
    return Report("overview", query, tables, {"previous": {
        "from": query.range.previous().start.isoformat(),
        "to": query.range.previous().end.isoformat()}})


def sections(query: ReportQuery) -> Report:
    """Popularity of each section: visitors, pageviews, engaged time, share of pageviews."""
    plan = rollups.plan(query)
    rows = _section_rows(query, query.limit) if plan is None \
        else _section_rows_from(plan, query.limit)
    return Report("sections", query, {"sections": table("sections", SECTION_COLUMNS, rows)})


def pages(query: ReportQuery) -> Report:
    """Top pages, entry pages and exit pages."""
    plan = rollups.plan(query)
    top, entry, exit_rows, views_of = _pages_raw(query) if plan is None \
        else _pages_from(plan, query.limit)
    return Report("pages", query, {
        "top": table("top", (Column("path", "text", drill="page"), Column("title", "text"),
                             Column("pageviews"), Column("visitors"),
                             Column("avg_engaged_s", "seconds")),
                     [{"path": r[0], "title": r[1], "pageviews": _int(r[2]),
                       "visitors": _int(r[3]), "avg_engaged_s": _seconds(r[4])} for r in top]),
        "entry": table("entry", (Column("path", "text", drill="page"), Column("entries"),
                                 Column("visitors"), Column("bounce_rate", "rate"),
                                 Column("avg_visit_duration_s", "seconds")),
                       [{"path": r[0], "entries": _int(r[1]), "visitors": _int(r[2]),
                         "bounce_rate": ratio(_int(r[3]), _int(r[1])),
                         "avg_visit_duration_s": _seconds(r[4])} for r in entry]),
        "exit": table("exit", (Column("path", "text", drill="page"), Column("exits"),
                               Column("pageviews"), Column("exit_rate", "rate")),
                      [{"path": r[0], "exits": _int(r[1]),
                        "pageviews": _int(views_of.get(r[0])),
                        "exit_rate": ratio(_int(r[1]), _int(views_of.get(r[0])))}
                       for r in exit_rows]),
    })


def _pages_raw(query: ReportQuery) -> tuple[Sequence[Any], Sequence[Any], Sequence[Any],
                                            dict[str, int]]:
    """Top, entry and exit rows, and the pageviews of the exit pages, from the raw rows."""
    scope = _Scope(query)
    pageviews = func.count(PV.id).label("pageviews")
    top = db.session.execute(
        _pageviews_from().join(P, P.id == PV.page_id)
        .add_columns(P.path, P.title, pageviews, func.count(distinct(V.visitor_id)),
                     func.avg(PV.engaged_ms))
        .where(*scope.pageviews()).group_by(P.id, P.path, P.title)
        .order_by(desc(pageviews), P.path).limit(query.limit)
    ).all()
    entries = func.count(V.id).label("entries")
    entry = db.session.execute(
        select(P.path, entries, func.count(distinct(V.visitor_id)),
               func.sum(case((V.pageviews <= 1, 1), else_=0)), func.avg(_visit_duration_ms()))
        .select_from(V).join(P, P.id == V.entry_page_id).where(*scope.visits())
        .group_by(P.path).order_by(desc(entries), P.path).limit(query.limit)
    ).all()
    exits = func.count(V.id).label("exits")
    exit_rows = db.session.execute(
        select(P.path, exits).select_from(V).join(P, P.id == V.exit_page_id)
        .where(*scope.visits()).group_by(P.path).order_by(desc(exits), P.path)
        .limit(query.limit)
    ).all()
    views_of = dict(db.session.execute(
        _pageviews_from().join(P, P.id == PV.page_id).add_columns(P.path, func.count(PV.id))
        .where(*scope.pageviews(), P.path.in_([r[0] for r in exit_rows])).group_by(P.path)
    ).all()) if exit_rows else {}
    return top, entry, exit_rows, views_of


def _pages_from(plan: Plan, limit: int) -> tuple[Sequence[Any], Sequence[Any],
                                                 Sequence[Any], dict[str, int]]:
    """The same rows as `_pages_raw`, from the rollups."""
    info = _page_info()
    views = rollups.pages(plan, sketches=("visitors",))
    top = sorted(((info[i][0], info[i][2], a.pageviews, hll.count(a.visitors),
                   ratio(a.engaged_ms, a.pageviews)) for i, a in views.items() if a.pageviews),
                 key=lambda r: (-r[2], r[0]))[:limit]
    by_visit = rollups.visits(plan, ["entry", "exit"], sketches=True)
    entry = sorted(((info[int(k)][0], a.visits, hll.count(a.visitors), a.bounces,
                     ratio(a.duration_ms, a.visits))
                    for (dim, k), a in by_visit.items() if dim == "entry" and a.visits),
                   key=lambda r: (-r[1], r[0]))[:limit]
    exit_rows = sorted(((info[int(k)][0], a.visits) for (dim, k), a in by_visit.items()
                        if dim == "exit" and a.visits), key=lambda r: (-r[1], r[0]))[:limit]
    views_of = {info[i][0]: a.pageviews for i, a in views.items()}
    return top, entry, exit_rows, views_of


def _page_info() -> dict[int, tuple[str, str, str]]:
    """Every page: id -> (path, section, title). The pages table is small."""
    return {r[0]: (r[1], r[2], r[3]) for r in db.session.execute(
        select(P.id, P.path, P.section, P.title))}


def _default_focus(query: ReportQuery) -> str | None:
    if query.focus:
        return query.focus
    if query.by == "page" and query.filters.page:
        return query.filters.page
    if query.by == "section" and query.filters.section:
        return query.filters.section
    scope = _Scope(query)
    label = P.path if query.by == "page" else P.section
    count = func.count(PV.id).label("n")
    return db.session.execute(
        _pageviews_from().join(P, P.id == PV.page_id).add_columns(label, count)
        .where(*scope.pageviews_in_visits()).group_by(label).order_by(desc(count), label)
        .limit(1)
    ).scalar()


def flows(query: ReportQuery) -> Report:
    """Where visitors of a page (or section) came from, where they went next, how many left;
    and the most frequent journeys from entry to exit."""
    plan = rollups.plan(query)
    if plan is None:
        focus, total, came_from, went_to = _flow_raw(query)
        journey_rows = _journey_rows(query, query.by, min(query.limit, 20))
    else:
        focus, total, came_from, went_to = _flow_from(query, plan)
        journey_rows = _journey_rows_from(plan, query.by, min(query.limit, 20))
    flow = assemble_flow(query.by, focus or "", total, came_from, went_to)
    link_columns = (Column("label", "text", drill="focus"), Column("pageviews"),
                    Column("share", "rate"))

    def link_rows(counts: dict[Any, int], outside: str) -> list[dict[str, Any]]:
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] or ""))
        return [{"label": label if label is not None else outside, "pageviews": count,
                 "share": ratio(count, total)} for label, count in ranked[:query.limit]]

    exits = max(total - sum(went_to.values()), 0)
    went: dict[str | None, int] = dict(went_to)
    if exits:
        went[None] = exits
    return Report("flows", query, {
        "came_from": table("came_from", link_columns, link_rows(came_from, "(entrance)")),
        "went_to": table("went_to", link_columns, link_rows(went, "(exit)")),
        "journeys": table("journeys", (Column("journey", "path"), Column("visits")),
                          journey_rows),
    }, {"flow": flow.as_dict(), "diagram": layout_flow(flow) if total else None,
        "focus": focus})


def _flow_raw(query: ReportQuery) -> tuple[str | None, int, dict[str | None, int],
                                           dict[str, int]]:
    """Focus, its pageviews, where they came from and where they went, from the raw rows."""
    scope = _Scope(query)
    focus = _default_focus(query)
    prev, nxt = aliased(Page), aliased(Page)
    by_page = query.by == "page"
    focus_ids = select(P.id).where((P.path if by_page else P.section) == focus)
    where = scope.pageviews_in_visits()
    total = _int(db.session.execute(
        _pageviews_from().add_columns(func.count(PV.id))
        .where(*where, PV.page_id.in_(focus_ids))).scalar())
    prev_label = prev.path if by_page else prev.section
    came_from: dict[str | None, int] = {
        label: _int(count) for label, count in db.session.execute(
            _pageviews_from().outerjoin(prev, prev.id == PV.prev_page_id)
            .add_columns(prev_label, func.count(PV.id))
            .where(*where, PV.page_id.in_(focus_ids)).group_by(prev_label))}
    next_label = nxt.path if by_page else nxt.section
    went_to: dict[str, int] = {
        label: _int(count) for label, count in db.session.execute(
            _pageviews_from().join(nxt, nxt.id == PV.page_id)
            .add_columns(next_label, func.count(PV.id))
            .where(*where, PV.prev_page_id.in_(focus_ids)).group_by(next_label))}
    return focus, total, came_from, went_to


def _flow_from(query: ReportQuery, plan: Plan) -> tuple[str | None, int,
                                                        dict[str | None, int], dict[str, int]]:
    """The same as `_flow_raw`, from the rollups (no filter is set on this path)."""
    info = _page_info()
    index = 0 if query.by == "page" else 1
    views: dict[str, int] = Counter()
    for page_id, agg in rollups.pages(plan).items():
        if agg.pageviews:
            views[info[page_id][index]] += agg.pageviews
    focus = query.focus or None
    if focus is None and views:
        focus = min(views, key=lambda label: (-views[label], label))
    came_from: dict[str | None, int] = Counter()
    went_to: dict[str, int] = Counter()
    focus_ids = [page_id for page_id, labels in info.items() if labels[index] == focus]
    for (prev, page), count in rollups.transitions(plan, focus_ids).items():
        if info[page][index] == focus:
            came_from[info[prev][index] if prev else None] += count
        if prev and info[prev][index] == focus:
            went_to[info[page][index]] += count
    return focus, views.get(focus, 0) if focus is not None else 0, dict(came_from), \
        dict(went_to)


DISTRIBUTION_COLUMNS = (Column("duration", "text"), Column("count"), Column("share", "rate"))


def duration(query: ReportQuery) -> Report:
    """Distributions of visit durations and of engaged time per page, overall and by section."""
    plan = rollups.plan(query)
    visit_buckets: dict[int, int] = Counter()
    by_entry: dict[str, dict[int, int]] = defaultdict(Counter)
    for section, bucket, count in (_visit_duration_buckets(query, by_entry_section=True)
                                   if plan is None else _visit_duration_buckets_from(plan)):
        visit_buckets[bucket] += count
        by_entry[section or UNKNOWN][bucket] += count
    page_buckets: dict[int, int] = Counter()
    by_section: dict[str, dict[int, int]] = defaultdict(Counter)
    engaged: dict[str, int] = Counter()
    for section, bucket, count, ms in (_engaged_buckets(query) if plan is None
                                       else _engaged_buckets_from(plan)):
        page_buckets[bucket] += count
        by_section[section][bucket] += count
        engaged[section] += ms

    def matrix(data: dict[str, dict[int, int]], extra: Callable[[str], dict[str, Any]]
               ) -> list[dict[str, Any]]:
        rows = []
        for section, counts in data.items():
            row: dict[str, Any] = {"section": section, "total": sum(counts.values())}
            row.update({label: counts.get(i, 0) for i, label in enumerate(DURATION_LABELS)})
            row.update(extra(section))
            rows.append(row)
        return sorted(rows, key=lambda r: (-r["total"], r["section"]))

    bucket_columns = tuple(Column(label) for label in DURATION_LABELS)
    section_column = Column("section", "text", drill="section")
    return Report("duration", query, {
        "visit_durations": table("visit_durations", DISTRIBUTION_COLUMNS,
                                 _distribution(visit_buckets)),
        "engaged_per_page": table("engaged_per_page", DISTRIBUTION_COLUMNS,
                                  _distribution(page_buckets)),
        "engaged_by_section": table(
            "engaged_by_section",
            (section_column, Column("total"), *bucket_columns, Column("avg_engaged_s", "seconds")),
            matrix(by_section, lambda s: {"avg_engaged_s": _seconds(
                ratio(engaged[s], sum(by_section[s].values())))})),
        "visits_by_entry_section": table(
            "visits_by_entry_section", (section_column, Column("total"), *bucket_columns),
            matrix(by_entry, lambda s: {})),
    })


def _visit_groups(query: ReportQuery, keys: Sequence[Any], *, extra: Sequence[Any] = (),
                  limit: int | None = None) -> list[Any]:
    """Visits grouped by `keys`: key values, visits, visitors, bounces, then `extra`."""
    scope = _Scope(query)
    visits = func.count(V.id).label("visits")
    statement = (select(*keys, visits, func.count(distinct(V.visitor_id)),
                        func.sum(case((V.pageviews <= 1, 1), else_=0)), *extra)
                 .where(*scope.visits()).group_by(*keys).order_by(desc(visits), *keys))
    if limit is not None:
        statement = statement.limit(limit)
    return db.session.execute(statement).all()


def _visit_total(query: ReportQuery) -> int:
    return _int(db.session.execute(
        select(func.count(V.id)).where(*_Scope(query).visits())).scalar())


SOURCE_COLUMNS = (Column("visits"), Column("visitors"), Column("bounce_rate", "rate"))
SOURCE_DIMS = ("channel", "referrer", "utm_campaign", "utm_source", "utm_medium")


def _source_rows(rows: Sequence[Any], key: str) -> list[dict[str, Any]]:
    return [{key: r[0], "visits": _int(r[1]), "visitors": _int(r[2]),
             "bounce_rate": ratio(_int(r[3]), _int(r[1]))} for r in rows]


def sources(query: ReportQuery) -> Report:
    """Referring domains, search engines, channels and UTM campaigns, sources, mediums."""
    scope = _Scope(query)
    plan = rollups.plan(query)
    groups: dict[str, list[Any]] = {}
    channels: dict[str, int] = Counter()
    if plan is None:
        groups["referrer"] = _visit_groups(query, [V.referrer_domain])
        for domain, source, medium, count in db.session.execute(
            select(V.referrer_domain, V.utm_source, V.utm_medium, func.count(V.id))
            .where(*scope.visits()).group_by(V.referrer_domain, V.utm_source, V.utm_medium)
        ):
            channels[channel(domain, source, medium)] += _int(count)
        for dim, column in (("utm_campaign", V.utm_campaign), ("utm_source", V.utm_source),
                            ("utm_medium", V.utm_medium)):
            groups[dim] = _visit_groups(query, [column])
    else:
        by_dim: dict[str, list[Any]] = defaultdict(list)
        for (dim, key), agg in rollups.visits(plan, SOURCE_DIMS).items():
            if dim == "channel":
                channels[key or ""] += agg.visits
            elif agg.visits:
                by_dim[dim].append((key, agg.visits, agg.bounces))
        # Visitors only for the rows shown (the first non-empty keys of each list): the long
        # tail of referrers grows with the traffic, and its sketches would be read for nothing.
        ranked_by_dim = {dim: sorted(by_dim[dim], key=lambda r: (-r[1], r[0] is None, r[0] or ""))
                         for dim in SOURCE_DIMS[1:]}
        shown = {dim: [r[0] for r in rows if r[0] is not None][:query.limit]
                 for dim, rows in ranked_by_dim.items()}
        sketches = rollups.visitors_of(plan, shown)
        for dim, rows in ranked_by_dim.items():
            groups[dim] = [(key, visits, hll.count(sketches[(dim, key)])
                            if (dim, key) in sketches else 0, bounces)
                           for key, visits, bounces in rows]
    referrers = groups["referrer"]
    engines: dict[str, int] = Counter()
    for domain, visits, *_ in referrers:
        engine = search_engine(domain)
        if engine:
            engines[engine] += _int(visits)
    total = sum(channels.values())

    def ranked(counts: dict[str, int], key: str) -> list[dict[str, Any]]:
        return [{key: k, "visits": v, "share": ratio(v, total)}
                for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def utm(dim: str, key: str) -> list[dict[str, Any]]:
        rows = [r for r in groups[dim] if r[0] is not None]
        return _source_rows(rows[:query.limit], key)

    share_columns = (Column("visits"), Column("share", "rate"))
    return Report("sources", query, {
        "channels": table("channels", (Column("channel", "text"), *share_columns),
                          ranked(channels, "channel")),
        "referrers": table("referrers", (Column("domain", "text", drill="source"),
                                         *SOURCE_COLUMNS),
                           _source_rows([r for r in referrers if r[0] is not None][:query.limit],
                                        "domain")),
        "search_engines": table("search_engines", (Column("engine", "text"), *share_columns),
                                ranked(engines, "engine")),
        "utm_campaigns": table("utm_campaigns", (Column("campaign", "text"), *SOURCE_COLUMNS),
                               utm("utm_campaign", "campaign")),
        "utm_sources": table("utm_sources", (Column("source", "text", drill="source"),
                                             *SOURCE_COLUMNS), utm("utm_source", "source")),
        "utm_mediums": table("utm_mediums", (Column("medium", "text"), *SOURCE_COLUMNS),
                             utm("utm_medium", "medium")),
    })


def _share_rows(rows: Sequence[Any], keys: Sequence[str], total: int) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = {k: row[i] for i, k in enumerate(keys)}
        n = len(keys)
        item.update(visits=_int(row[n]), visitors=_int(row[n + 1]),
                    share=ratio(_int(row[n]), total))
        out.append(item)
    return out


SHARE_COLUMNS = (Column("visits"), Column("visitors"), Column("share", "rate"))


def technology(query: ReportQuery) -> Report:
    """Browsers (and their versions), operating systems and device classes."""
    total = _visit_total(query)

    def group(*columns: Any) -> list[Any]:
        return _visit_groups(query, columns, limit=query.limit)

    return Report("technology", query, {
        "browsers": table("browsers", (Column("browser", "text", drill="browser"),
                                       *SHARE_COLUMNS),
                          _share_rows(group(V.browser), ["browser"], total)),
        "browser_versions": table("browser_versions",
                                  (Column("browser", "text", drill="browser"),
                                   Column("version", "text"), *SHARE_COLUMNS),
                                  _share_rows(group(V.browser, V.browser_version),
                                              ["browser", "version"], total)),
        "os": table("os", (Column("os", "text"), *SHARE_COLUMNS),
                    _share_rows(group(V.os), ["os"], total)),
        "devices": table("devices", (Column("device", "text", drill="device"), *SHARE_COLUMNS),
                         _share_rows(group(V.device), ["device"], total)),
    })


def networks(query: ReportQuery) -> Report:
    """Organisations that registered visitors' addresses, and registrable domains of their
    reverse-DNS names: which companies and networks visit (never a single host, nor a network
    fewer than MIN_NETWORK_VISITORS visitors came from)."""
    scope = _Scope(query)
    total = _visit_total(query)
    organisations = [r for r in _visit_groups(query, [V.organization, V.asn])
                     if r[0] is not None and _int(r[3]) >= MIN_NETWORK_VISITORS][:query.limit]
    visits: dict[str, int] = Counter()
    visitors: dict[str, set[str]] = defaultdict(set)
    for name, visitor, count in db.session.execute(
        select(V.dns_name, V.visitor_id, func.count(V.id))
        .where(*scope.visits(), V.dns_name.is_not(None)).group_by(V.dns_name, V.visitor_id)
    ):
        domain = registrable_domain(name) or UNKNOWN
        visits[domain] += _int(count)
        visitors[domain].add(visitor)
    domains = [{"domain": d, "visits": n, "visitors": len(visitors[d]),
                "share": ratio(n, total)}
               for d, n in sorted(visits.items(), key=lambda kv: (-kv[1], kv[0]))
               if len(visitors[d]) >= MIN_NETWORK_VISITORS]
    return Report("networks", query, {
        "organisations": table("organisations", (Column("organisation", "text"),
                                                 Column("asn", "text"), *SHARE_COLUMNS),
                               [{"organisation": r[0], "asn": r[1], "visits": _int(r[2]),
                                 "visitors": _int(r[3]), "share": ratio(_int(r[2]), total)}
                                for r in organisations]),
        "domains": table("domains", (Column("domain", "text"), *SHARE_COLUMNS),
                         domains[:query.limit]),
    }, {"notes": {"visits": total, "min_visitors": MIN_NETWORK_VISITORS,
                  "with_organisation": sum(_int(r[2]) for r in organisations),
                  "with_dns_name": sum(visits.values())}})


def locations(query: ReportQuery) -> Report:
    """Countries and cities, only from visits whose location consent was granted."""
    scope = _Scope(query)
    consented = [*scope.visits(), Consent.location == true()]

    def grouped(*columns: Any) -> list[Any]:
        count = func.count(V.id).label("visits")
        return db.session.execute(
            select(*columns, count, func.count(distinct(V.visitor_id)))
            .join(Consent, Consent.id == V.consent_id).where(*consented)
            .group_by(*columns).order_by(desc(count), *columns).limit(query.limit)
        ).all()

    with_consent = _int(db.session.execute(
        select(func.count(V.id)).join(Consent, Consent.id == V.consent_id).where(*consented)
    ).scalar())
    total = _visit_total(query)
    countries = grouped(V.country)
    cities = [r for r in grouped(V.country, V.city) if r[1] is not None]
    return Report("locations", query, {
        "countries": table("countries", (Column("country", "text", drill="country"),
                                         *SHARE_COLUMNS),
                           [{"country": r[0] or UNKNOWN, "visits": _int(r[1]),
                             "visitors": _int(r[2]), "share": ratio(_int(r[1]), with_consent)}
                            for r in countries]),
        "cities": table("cities", (Column("country", "text", drill="country"),
                                   Column("city", "text"), *SHARE_COLUMNS),
                        [{"country": r[0] or UNKNOWN, "city": r[1], "visits": _int(r[2]),
                          "visitors": _int(r[3]), "share": ratio(_int(r[2]), with_consent)}
                         for r in cities]),
    }, {"location_consent": {"visits": total, "with_location_consent": with_consent,
                             "rate": ratio(with_consent, total)}})


METHODS = ("accept_all", "refuse_all", "custom")
PURPOSES = ("analytics", "location", "marketing")


def consent(query: ReportQuery) -> Report:
    """How visitors answered the banner: accept, refuse, customise, and each purpose's rate,
    overall and over time.

    Banner answers carry no page, source or browser, so the filters do not apply here.
    """
    scope = _Scope(query)
    C = Consent
    sub = (select(scope.bucket(C.created_at).label("bucket"), C.method.label("method"),
                  *[getattr(C, p).label(p) for p in PURPOSES])
           .where(C.created_at >= scope.start, C.created_at < scope.end).subquery())
    counts = [func.sum(case((sub.c.method == m, 1), else_=0)) for m in METHODS] + \
        [func.sum(case((sub.c[p] == true(), 1), else_=0)) for p in PURPOSES]
    by_bucket = {row[0]: [_int(v) for v in row[1:]] for row in db.session.execute(
        select(sub.c.bucket, func.count(), *counts).group_by(sub.c.bucket))}
    totals = [sum(values) for values in zip(*by_bucket.values(), strict=True)] \
        if by_bucket else [0] * (1 + len(METHODS) + len(PURPOSES))
    total = totals[0]
    series = []
    for label in bucket_labels(query.range, query.granularity, scope.tz):
        n, *rest = by_bucket.get(label, [0] * len(totals))
        row: dict[str, Any] = {"bucket": label, "decisions": n}
        for key, value in zip(METHODS + PURPOSES, rest, strict=True):
            row[key] = value
            row[f"{key}_rate"] = ratio(value, n)
        series.append(row)
    keys = METHODS + PURPOSES
    return Report("consent", query, {
        "methods": table("methods", (Column("method", "text"), Column("decisions"),
                                     Column("share", "rate")),
                         [{"method": m, "decisions": totals[1 + i],
                           "share": ratio(totals[1 + i], total)}
                          for i, m in enumerate(METHODS)]),
        "purposes": table("purposes", (Column("purpose", "text"), Column("granted"),
                                       Column("rate", "rate")),
                          [{"purpose": p, "granted": totals[1 + len(METHODS) + i],
                            "rate": ratio(totals[1 + len(METHODS) + i], total)}
                           for i, p in enumerate(PURPOSES)]),
        "series": table("series", (Column("bucket", "text"), Column("decisions"),
                                   *[Column(k) for k in keys],
                                   *[Column(f"{k}_rate", "rate") for k in keys]), series),
    }, {"notes": {"filters_apply": False, "decisions": total}})


def realtime(query: ReportQuery) -> Report:
    """Visitors active in the last 5 minutes and the pages they are on (the range is ignored)."""
    now = query.now or utcnow()
    active = [V.last_seen_at >= now - REALTIME_WINDOW, V.last_seen_at <= now,
              *_visit_filters(query.filters)]
    visitors, visits = db.session.execute(
        select(func.count(distinct(V.visitor_id)), func.count(V.id)).where(*active)).one()
    count = func.count(distinct(V.visitor_id)).label("visitors")
    on_pages = db.session.execute(
        select(P.path, count).select_from(V).join(P, P.id == V.exit_page_id).where(*active)
        .group_by(P.path).order_by(desc(count), P.path).limit(query.limit)).all()
    since = now - REALTIME_SERIES
    times = db.session.execute(
        _pageviews_from().add_columns(PV.ts)
        .where(PV.ts >= since, PV.ts <= now, *_visit_filters(query.filters, with_pages=False),
               *_pages_matching(query.filters))).scalars().all()
    per_minute = Counter(minute_label(ts, query.tz) for ts in times)
    minutes = [{"minute": label, "pageviews": per_minute.get(label, 0)}
               for label in (minute_label(now - timedelta(minutes=n), query.tz)
                             for n in range(int(REALTIME_SERIES.total_seconds() // 60), -1, -1))]
    return Report("realtime", query, {
        "summary": table("summary", (Column("visitors"), Column("visits")),
                         [{"visitors": _int(visitors), "visits": _int(visits)}]),
        "pages": table("pages", (Column("path", "text", drill="page"), Column("visitors")),
                       [{"path": r[0], "visitors": _int(r[1])} for r in on_pages]),
        "minutes": table("minutes", (Column("minute", "text"), Column("pageviews")), minutes),
    }, {"notes": {"window_minutes": int(REALTIME_WINDOW.total_seconds() // 60)}})


REPORTS: dict[str, Callable[[ReportQuery], Report]] = {
    "overview": overview,
    "sections": sections,
    "pages": pages,
    "flows": flows,
    "duration": duration,
    "sources": sources,
    "technology": technology,
    "networks": networks,
    "locations": locations,
    "consent": consent,
    "realtime": realtime,
}


def run(name: str, query: ReportQuery) -> Report:
    """Compute the report called `name`; ReportError when there is no such report."""
    report = REPORTS.get(name)
    if report is None:
        raise ReportError("report", f"unknown report {name!r}")
    sync_sections(query.section_rules)
    return report(query)


def sync_sections(rules: Sequence[SectionRule]) -> int:
    """Re-label pages whose section the current rules name differently; return how many.

    Sections are stored on the (small) pages table for fast grouping; re-labelling here
    makes a change of `TRACKER_SECTIONS` apply to past traffic too.
    """
    changed = [{"id": page_id, "section": new}
               for page_id, path, old in db.session.execute(select(P.id, P.path, P.section))
               if (new := section_of(path, rules)) != old]
    if changed:
        db.session.execute(update(Page), changed)
        db.session.commit()
        rollups.invalidate()  # journeys by section were rolled up with the old names
    return len(changed)


def has_demo_data() -> bool:
    """True when demo traffic (consents given through the demo banner) is in the database."""
    return db.session.execute(
        select(exists().where(Consent.banner_sha256 == DEMO_BANNER_SHA256))).scalar() or False


def has_pageviews() -> bool:
    """True when at least one pageview is stored."""
    return bool(db.session.execute(select(exists().where(PV.id.is_not(None)))).scalar())


__all__ = ["REPORTS", "Report", "ReportError", "ReportQuery", "Table", "has_demo_data",
           "has_pageviews", "run", "sync_sections"]
