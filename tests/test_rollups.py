"""Rollups: the reports read from them give the raw reports' figures (distinct counts within
the HyperLogLog bound), and the refresh job is idempotent and never misses or double counts:
late events, engagement updates, visits crossing midnight, a refresh while ingest writes.
On SQLite and PostgreSQL (the `app` fixture)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.helpers import SITE, Traffic, hex32
from tests.test_reports import RANGE, TZ_NAME, Reference, query, utc
from tests.test_reports import traffic as traffic  # noqa: F401  (the same two weeks of data)
from tracker.domain import hll
from tracker.domain.reports import DateRange, Filters
from tracker.extensions import db
from tracker.models import Pageview
from tracker.models.rollups import ROLLUP_TABLES, RollupDirty, RollupSketchMonth
from tracker.services import reports, rollups

SIX = ("overview", "sections", "pages", "flows", "duration", "sources")
# Columns holding distinct counts: HyperLogLog estimates on the rollup path.
DISTINCT = {"visitors"}
DISTINCT_IN = {("sections", "visits"), ("top_sections", "visits")}


def q(source: str, period: DateRange = RANGE, **options: Any) -> Any:
    return query(period, source=source, **options)


def row_key(table: Any, row: dict[str, Any]) -> tuple:
    keys = [c.key for c in table.columns if c.kind in ("text", "path")]
    return tuple(tuple(row[k]) if isinstance(row[k], list) else row[k] for k in keys)


def close(actual: Any, expected: Any, what: str, *, distinct: bool) -> None:
    if distinct and expected is not None:
        assert abs(actual - expected) <= hll.error_bound(expected), what
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=0.051), what
    else:
        assert actual == expected, what


def same_report(name: str, fast: Any, raw: Any) -> None:
    """Every table and figure equal, distinct counts within the HyperLogLog bound."""
    assert set(fast.tables) == set(raw.tables), name
    for table_name, table in raw.tables.items():
        mine = fast.tables[table_name]
        expected = {row_key(table, r): r for r in table.rows}
        actual = {row_key(mine, r): r for r in mine.rows}
        assert set(actual) == set(expected), f"{name}.{table_name}: rows"
        for key, row in expected.items():
            visitors_row = table_name == "summary" and row["metric"] == "visitors"
            for column, value in row.items():
                if visitors_row and column == "change":
                    continue
                distinct = column in DISTINCT or (table_name, column) in DISTINCT_IN or (
                    visitors_row and column in ("value", "previous"))
                close(actual[key][column], value, f"{name}.{table_name}[{key}].{column}",
                      distinct=distinct)
    if name == "flows":
        assert fast.extra["flow"] == raw.extra["flow"]


def check_all(period: DateRange = RANGE, **options: Any) -> None:
    for name in SIX:
        for by in ("page", "section") if name == "flows" else ("page",):
            fast = reports.run(name, q("rollups", period, by=by, **options))
            raw = reports.run(name, q("raw", period, by=by, **options))
            same_report(name, fast, raw)


def rollup_rows() -> dict[str, list[tuple]]:
    """Every stored rollup (ids left out), in a stable order."""
    out = {}
    for model in (*ROLLUP_TABLES, RollupSketchMonth):
        columns = [c for c in model.__table__.columns if c.name != "id"]
        rows = db.session.execute(select(*columns)).all()
        out[model.__tablename__] = sorted((tuple(r) for r in rows), key=repr)
    return out


def rebuilt_rows() -> dict[str, list[tuple]]:
    rollups.invalidate()
    result = rollups.refresh(timezone=TZ_NAME)
    assert result.complete and result.days > 0
    return rollup_rows()


def pending() -> int:
    return len(db.session.scalars(select(RollupDirty.id)).all())


# -- the reports ------------------------------------------------------------------------


def test_reports_from_rollups_equal_the_raw_reports(traffic):
    assert rollups.plan(q("rollups")) is None, "no rollups before the first refresh"
    result = rollups.refresh(timezone=TZ_NAME)
    assert result.complete and result.days >= 14 and pending() == 0
    plan = rollups.plan(q("rollups"))
    assert plan is not None and plan.pending == []
    assert db.session.scalar(select(db.func.count()).select_from(ROLLUP_TABLES[0])) > 0
    check_all()
    check_all(granularity="week")
    check_all(DateRange(RANGE.start - timedelta(days=10), RANGE.end), granularity="month")
    march = DateRange(date(2026, 3, 1), date(2026, 3, 31))
    assert rollups.plan(q("rollups", march)).months() == [date(2026, 3, 1)]
    check_all(march)  # the month's merged sketches
    # Straight against the plain-Python reference of tests/test_reports.py.
    ref = Reference(q("rollups")).summary()
    figures = {r["metric"]: r["value"]
               for r in reports.run("overview", q("rollups")).tables["summary"].rows}
    for metric, value in ref.items():
        close(figures[metric], value, metric, distinct=metric == "visitors")


def test_which_rows_answer(traffic):
    rollups.refresh(timezone=TZ_NAME)
    assert rollups.plan(q("rollups")) is not None
    assert rollups.plan(q("raw")) is None
    assert rollups.plan(q("rollups", filters=Filters(device="mobile"))) is None
    assert rollups.plan(replace(q("rollups"), timezone="America/New_York")) is None
    # A range this small is cheaper and exact from the raw rows.
    assert rollups.plan(q("auto")) is None
    # Filtered reports still answer, from the raw rows.
    fast = reports.run("sections", q("rollups", filters=Filters(section="journal")))
    assert [r["section"] for r in fast.tables["sections"].rows] == ["journal"]


def test_changed_section_rules_fall_back_to_raw_until_rebuilt(traffic):
    from tracker.domain.reports import parse_section_rules

    rollups.refresh(timezone=TZ_NAME)
    rules = parse_section_rules("/projets/=Work")
    renamed = reports.run("sections", q("rollups", section_rules=rules))
    assert "Work" in {r["section"] for r in renamed.tables["sections"].rows}
    assert rollups.plan(q("rollups", section_rules=rules)) is None
    rollups.refresh(timezone=TZ_NAME)
    check_all(section_rules=rules)
    journeys = reports.run("overview", q("rollups", section_rules=rules)).tables["journeys"]
    assert any("Work" in r["journey"] for r in journeys.rows)


# -- the refresh job ----------------------------------------------------------------------


def late_traffic() -> None:
    """What arrives after a refresh: a late engagement beacon for an old pageview, a visit
    going on past local midnight, and a spool replay of events from days ago."""
    t = Traffic()
    # Starts at 23:50 local on the 26th; its second pageview is on the 27th.
    night = t.visitor(utc(date(2026, 3, 26)) - timedelta(hours=1))
    t.visit(night, utc(date(2026, 3, 27)) - timedelta(minutes=10),
            [("/projets/", 0, 4000), ("/journal/", 900, 2000)], referrer="https://www.bing.com/")
    # Events of the 25th, replayed now.
    old = t.visitor(utc(date(2026, 3, 25)))
    t.visit(old, utc(date(2026, 3, 25)) + timedelta(hours=11),
            [("/", 0, 0), ("/studio/", 40, 61_000), ("/contact/", 120, 700_000)])
    t.store()
    # A late engagement beacon: the pageview's engaged time grows (by replacement).
    pv = db.session.execute(
        select(Pageview.event_id, Pageview.ts, Pageview.visit_id)
        .where(Pageview.ts >= utc(date(2026, 3, 24)), Pageview.ts < utc(date(2026, 3, 25)))
        .order_by(Pageview.id).limit(1)).one()
    from tracker.models import Visit

    visit = db.session.get(Visit, pv.visit_id)
    t.events.append({"type": "engagement", "event_id": hex32(), "pageview_id": pv.event_id,
                     "engaged_ms": 3_000_000, "visitor_id": visit.visitor_id,
                     "consent_id": visit.consent_id, "url": SITE + "/", "title": "Amniotic",
                     "ip": "89.160.20.112", "user_agent": "x", "referrer": "",
                     "received_at": (pv.ts + timedelta(minutes=50)).isoformat()})
    t.store()
    db.session.commit()


def test_refresh_is_idempotent_and_counts_late_changes_once(traffic):
    rollups.refresh(timezone=TZ_NAME)
    first = rollup_rows()
    again = rollups.refresh(timezone=TZ_NAME)
    assert again.days == 0 and rollup_rows() == first, "a second refresh changes nothing"
    late_traffic()
    assert pending() > 0, "the triggers marked what changed"
    # Partially stale: marked days come from the raw rows, the others from the rollups.
    plan = rollups.plan(q("rollups"))
    assert plan is not None and date(2026, 3, 25) in plan.pending
    assert date(2026, 3, 29) not in plan.pending
    check_all()
    march = DateRange(date(2026, 3, 1), date(2026, 3, 31))
    assert rollups.plan(q("rollups", march)).months() == [], "March has pending days"
    check_all(march)
    result = rollups.refresh(timezone=TZ_NAME)
    assert 3 <= result.days <= 8 and pending() == 0
    refreshed = rollup_rows()
    assert refreshed != first
    check_all()
    check_all(DateRange(date(2026, 3, 1), date(2026, 3, 31)))
    assert rollups.refresh(timezone=TZ_NAME).days == 0
    assert rollup_rows() == refreshed
    # Incremental refreshes end exactly where a rebuild from scratch does.
    assert rebuilt_rows() == refreshed


def test_deletions_are_refreshed_too(traffic):
    from tracker.models import Visit

    rollups.refresh(timezone=TZ_NAME)
    victim = db.session.scalars(select(Visit).where(Visit.started_at >= utc(RANGE.start))
                                .order_by(Visit.id).limit(1)).one()
    db.session.execute(db.delete(Pageview).where(Pageview.visit_id == victim.id))
    db.session.delete(victim)
    db.session.commit()
    assert pending() > 0
    check_all()
    rollups.refresh(timezone=TZ_NAME)
    check_all()
    assert rollup_rows() == rebuilt_rows()


def test_a_refresh_while_ingest_writes_misses_nothing(app, traffic):
    rollups.refresh(timezone=TZ_NAME)
    batches = []
    for n in range(6):
        t = Traffic()
        day = utc(RANGE.start + timedelta(days=n))
        who = t.visitor(day)
        t.visit(who, day + timedelta(hours=9, minutes=n),
                [("/", 0, 1000 * n), ("/projets/", 30, 5000), ("/journal/", 90, 0)])
        batches.append(t)
    errors: list[BaseException] = []
    done = threading.Event()

    def refresher() -> None:
        try:
            with app.app_context():
                while not done.is_set():
                    rollups.refresh(timezone=TZ_NAME)
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    thread = threading.Thread(target=refresher)
    thread.start()
    try:
        for t in batches:
            t.store()
            db.session.commit()
    finally:
        done.set()
        thread.join(timeout=60)
    assert not errors, errors
    rollups.refresh(timezone=TZ_NAME)
    assert pending() == 0
    check_all()
    assert rollup_rows() == rebuilt_rows()


def test_rebuild_resumes_within_a_budget(traffic):
    result = rollups.refresh(timezone=TZ_NAME, budget_seconds=0, rebuild_chunk_days=3)
    assert not result.complete and result.rebuilding and result.days == 3
    assert rollups.plan(q("rollups")) is None, "the raw rows answer while rebuilding"
    late_traffic()  # written while rebuilding: before and after the rebuild's position
    calls = 1
    while not result.complete:
        result = rollups.refresh(timezone=TZ_NAME, budget_seconds=0, rebuild_chunk_days=3)
        calls += 1
    assert calls >= 5
    check_all()  # the late days are still marked: they come from the raw rows
    assert rollups.refresh(timezone=TZ_NAME).days > 0 and pending() == 0
    assert rollups.refresh(timezone=TZ_NAME).days == 0
    assert rollup_rows() == rebuilt_rows()


def test_empty_database_refreshes_to_complete(app):
    result = rollups.refresh(timezone=TZ_NAME)
    assert result.complete and result.days == 0
    fast = reports.run("overview", q("rollups"))
    assert {r["metric"]: r["value"] for r in fast.tables["summary"].rows}["visits"] == 0



def test_a_slow_refresh_spaces_out_the_next_ones(app, monkeypatch):
    # The refresh recomputes whole days: on a busy day it must not eat the drainer's time.
    clock = [1000.0]
    calls = []

    def refresh(**kwargs: Any) -> rollups.RefreshResult:
        calls.append(clock[0])
        return rollups.RefreshResult(complete=True, seconds=30.0)

    monkeypatch.setattr(rollups.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(rollups, "refresh", refresh)
    monkeypatch.setattr(rollups, "_next_refresh", {})
    assert rollups.maybe_refresh() is not None
    clock[0] += rollups.REFRESH_INTERVAL.total_seconds()  # a quick refresh would run again
    assert rollups.maybe_refresh() is None
    clock[0] = 1000.0 + rollups.REFRESH_SPACING * 30.0
    assert rollups.maybe_refresh() is not None
    assert calls == [1000.0, 1300.0]


def test_each_day_keeps_only_its_most_frequent_journeys(monkeypatch):
    # The long tail of journeys grows with the traffic; the reports show the top of a range.
    monkeypatch.setattr(rollups, "JOURNEYS_PER_DAY", 2)
    monday, tuesday = date(2026, 3, 2), date(2026, 3, 3)
    journeys = Counter({(monday, "page", "1,2"): 9, (monday, "page", "1"): 5,
                        (monday, "page", "3"): 5, (monday, "page", "4"): 1,
                        (monday, "section", "a"): 1, (tuesday, "page", "4"): 7})
    kept = dict(rollups._top_journeys(journeys))
    assert kept == {(monday, "page", "1,2"): 9, (monday, "page", "1"): 5,  # ties: by path
                    (monday, "section", "a"): 1, (tuesday, "page", "4"): 7}
