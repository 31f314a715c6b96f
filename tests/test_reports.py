"""Every report's figures against a reference computed here, in plain Python, from the raw
rows the ingest path stored (on SQLite and PostgreSQL, through the `app` fixture)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from statistics import mean
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from tests.helpers import Traffic
from tracker.domain.reports import (
    MIN_NETWORK_VISITORS,
    DateRange,
    Filters,
    ReportQuery,
    channel,
    parse_section_rules,
    search_engine,
)
from tracker.enrich import registrable_domain
from tracker.extensions import db
from tracker.models import Consent, Page, Pageview, Visit
from tracker.services import demo_data, reports, runtime

TZ_NAME = "Europe/Paris"
TZ = ZoneInfo(TZ_NAME)
# The demo traffic ends here; Paris moved to summer time on 2026-03-29.
NOW = datetime(2026, 3, 31, 10, 0)
RANGE = DateRange(date(2026, 3, 24), date(2026, 3, 30))
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")
# Upper bounds of the duration buckets, in seconds (restated from the issue).
BOUNDS = (10, 30, 60, 180, 600, 1800)
LABELS = ("0-10s", "10-30s", "30-60s", "1-3min", "3-10min", "10-30min", "30min+")


def query(period: DateRange = RANGE, **options: Any) -> ReportQuery:
    options.setdefault("granularity", "day")
    options.setdefault("limit", 1000)
    options.setdefault("section_rules", tuple(runtime.ingest().section_rules))
    return ReportQuery(range=period, timezone=TZ_NAME, now=NOW, **options)


# -- the reference --------------------------------------------------------------------


def utc(day: date) -> datetime:
    """Local midnight of `day` as naive UTC."""
    return datetime.combine(day, time(), tzinfo=TZ).astimezone(UTC).replace(tzinfo=None)


def local_label(at: datetime, granularity: str) -> str:
    local = at.replace(tzinfo=UTC).astimezone(TZ)
    if granularity == "hour":
        return local.strftime("%Y-%m-%d %H:00")
    if granularity == "week":
        return (local.date() - timedelta(days=local.weekday())).isoformat()
    return local.strftime("%Y-%m") if granularity == "month" else local.date().isoformat()


def bucket(ms: float) -> str:
    return next((LABELS[i] for i, bound in enumerate(BOUNDS) if ms < bound * 1000), LABELS[-1])


def seconds(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 1)


def share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


class Reference:
    """The reports' definitions (see tracker.services.reports), applied to raw rows."""

    def __init__(self, q: ReportQuery, period: DateRange | None = None) -> None:
        period = period or q.range
        self.q = q
        self.start, self.end = utc(period.start), utc(period.end + timedelta(days=1))
        self.visits = {v.id: v for v in db.session.execute(select(Visit.__table__)).all()}
        self.pages = {p.id: p for p in db.session.execute(select(Page.__table__)).all()}
        self.all_views = db.session.execute(select(Pageview.__table__)).all()
        self.views_of: dict[int, list[Any]] = defaultdict(list)
        for pv in self.all_views:
            self.views_of[pv.visit_id].append(pv)
        for views in self.views_of.values():
            views.sort(key=lambda pv: (pv.ts, pv.id))
        f = q.filters
        self.V = [v for v in self.visits.values()
                  if self.start <= v.started_at < self.end and self.visit_matches(v)
                  and (f.visit_level or any(self.page_matches(pv) for pv in self.views_of[v.id]))]
        self.PV = [pv for pv in self.all_views if self.start <= pv.ts < self.end
                   and self.visit_matches(self.visits[pv.visit_id]) and self.page_matches(pv)]

    def visit_matches(self, v: Any) -> bool:
        f = self.q.filters
        if v.is_bot:
            return False
        if f.source == "(direct)" and (v.referrer_domain or v.utm_source):
            return False
        if f.source not in (None, "(direct)") and f.source not in (v.referrer_domain,
                                                                   v.utm_source):
            return False
        return all(getattr(f, key) in (None, getattr(v, key))
                   for key in ("browser", "device", "country"))

    def page_matches(self, pv: Any) -> bool:
        page, f = self.pages[pv.page_id], self.q.filters
        return f.page in (None, page.path) and f.section in (None, page.section)

    def path(self, page_id: int) -> str:
        return self.pages[page_id].path

    def duration_ms(self, v: Any) -> int:
        last = max((pv.engaged_ms for pv in self.views_of[v.id] if pv.ts == v.last_seen_at),
                   default=0)
        return round((v.last_seen_at - v.started_at).total_seconds() * 1000) + last

    def summary(self) -> dict[str, Any]:
        V, PV = self.V, self.PV
        return {
            "visitors": len({v.visitor_id for v in V}),
            "visits": len(V),
            "pageviews": len(PV),
            "pages_per_visit": share(sum(v.pageviews for v in V), len(V)),
            "bounce_rate": share(sum(v.pageviews <= 1 for v in V), len(V)),
            "avg_visit_duration_s": seconds(mean(map(self.duration_ms, V))) if V else None,
            "avg_engaged_per_page_s": seconds(mean(pv.engaged_ms for pv in PV)) if PV else None,
        }

    def grouped(self, visits: Iterable[Any], key: Callable[[Any], Any]) -> dict[Any, dict]:
        groups: dict[Any, list[Any]] = defaultdict(list)
        for v in visits:
            groups[key(v)].append(v)
        return {k: {"visits": len(vs), "visitors": len({v.visitor_id for v in vs}),
                    "bounces": sum(v.pageviews <= 1 for v in vs), "list": vs}
                for k, vs in groups.items()}


def rows_by(table: Any, *keys: str) -> dict[Any, dict[str, Any]]:
    out = {}
    for row in table.rows:
        key = tuple(row[k] for k in keys)
        out[key if len(keys) > 1 else key[0]] = row
    assert len(out) == len(table.rows), "one row per key"
    return out


def same(actual: Any, expected: Any, what: str) -> None:
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=0.051), what
    else:
        assert actual == expected, what


def check_table(table: Any, expected: dict[Any, dict[str, Any]], *keys: str) -> None:
    actual = rows_by(table, *keys)
    assert set(actual) == set(expected), f"{table.name}: rows"
    for key, values in expected.items():
        for column, value in values.items():
            same(actual[key][column], value, f"{table.name}[{key}].{column}")


# -- the traffic ------------------------------------------------------------------------


@pytest.fixture
def traffic(app):
    """Two weeks of demo traffic around the DST change, plus bots and visits that straddle
    the range's first midnight."""
    demo_data.generate(runtime.ingest(), days=14, visits=220, now=NOW, timezone=TZ_NAME,
                       seed=11)
    extra = Traffic()
    bot = extra.visitor(datetime(2026, 3, 25, 8, 0))
    extra.visit(bot, datetime(2026, 3, 25, 8, 0, 5), [("/", 0, 0), ("/projets/", 2, 0)],
                user_agent=GOOGLEBOT)
    # Starts before the range (23:59:50 local on the 23rd), goes on into it.
    late = extra.visitor(utc(RANGE.start) - timedelta(minutes=5))
    extra.visit(late, utc(RANGE.start) - timedelta(seconds=10),
                [("/", 0, 4000), ("/studio/", 30, 9000)], user_agent=IPHONE)
    # Starts on the range's last local day, just before midnight.
    night = extra.visitor(utc(RANGE.end) + timedelta(hours=23, minutes=50), location=True)
    extra.visit(night, utc(RANGE.end) + timedelta(hours=23, minutes=59, seconds=50),
                [("/contact/", 0, 12000)], referrer="https://www.google.fr/")
    extra.store()
    assert db.session.scalar(select(Visit.id).where(Visit.is_bot.is_(True))) is not None


FILTER_SETS = [
    Filters(),
    Filters(browser="Firefox"),
    Filters(device="mobile"),
    Filters(country="GB"),
    Filters(source="google.fr"),
    Filters(source="newsletter"),
    Filters(source="(direct)"),
    Filters(source="email"),  # a UTM medium, not a source: nothing
    Filters(page="/projets/"),
    Filters(section="journal"),
    Filters(section="projets", device="desktop"),
]


def test_every_report_matches_the_reference(traffic):
    for filters in FILTER_SETS:
        q = query(filters=filters)
        ref = Reference(q)
        assert ref.V or filters != Filters(), "traffic in range"
        check_overview(q, ref)
        check_sections(q, ref)
        check_pages(q, ref)
        check_flows(q, ref)
        check_duration(q, ref)
        check_sources(q, ref)
        check_technology(q, ref)
        check_networks(q, ref)
        check_locations(q, ref)
        check_realtime(q, ref)
    check_consent(query())


@pytest.mark.parametrize("granularity", ["hour", "week", "month"])
def test_series_buckets_are_local_time(traffic, granularity):
    period = DateRange(date(2026, 3, 28), date(2026, 3, 30)) if granularity == "hour" \
        else RANGE
    q = query(period, granularity=granularity)
    ref = Reference(q)
    series = reports.run("overview", q).tables["series"]
    expected = defaultdict(lambda: {"visits": 0, "visitors": set(), "pageviews": 0})
    for v in ref.V:
        expected[local_label(v.started_at, granularity)]["visits"] += 1
        expected[local_label(v.started_at, granularity)]["visitors"].add(v.visitor_id)
    for pv in ref.PV:
        expected[local_label(pv.ts, granularity)]["pageviews"] += 1
    actual = rows_by(series, "bucket")
    assert set(expected) <= set(actual)
    if granularity == "hour":
        assert len(actual) == 24 + 23 + 24  # the 29th lost an hour
    for label, row in actual.items():
        exp = expected.get(label, {"visits": 0, "visitors": set(), "pageviews": 0})
        assert (row["visits"], row["visitors"], row["pageviews"]) == \
            (exp["visits"], len(exp["visitors"]), exp["pageviews"]), label


def check_overview(q: ReportQuery, ref: Reference) -> None:
    report = reports.run("overview", q)
    current, previous = ref.summary(), Reference(q, q.range.previous()).summary()
    summary = rows_by(report.tables["summary"], "metric")
    for metric, value in current.items():
        same(summary[metric]["value"], value, f"overview {q.filters} {metric}")
        same(summary[metric]["previous"], previous[metric], f"previous {metric}")
    series = rows_by(report.tables["series"], "bucket")
    days = [(q.range.start + timedelta(days=n)).isoformat() for n in range(q.range.days)]
    assert list(series) == days
    for day in days:
        vs = [v for v in ref.V if local_label(v.started_at, "day") == day]
        assert series[day]["visits"] == len(vs), day
        assert series[day]["pageviews"] == sum(
            local_label(pv.ts, "day") == day for pv in ref.PV), day
        same(series[day]["avg_visit_duration_s"],
             seconds(mean(map(ref.duration_ms, vs))) if vs else None, day)


def section_figures(ref: Reference) -> dict[str, dict[str, Any]]:
    by_section: dict[str, list[Any]] = defaultdict(list)
    for pv in ref.PV:
        by_section[ref.pages[pv.page_id].section].append(pv)
    entries = Counter(ref.pages[v.entry_page_id].section for v in ref.V)
    total = len(ref.PV)
    return {s: {"pageviews": len(pvs), "share": share(len(pvs), total),
                "visits": len({pv.visit_id for pv in pvs}),
                "visitors": len({ref.visits[pv.visit_id].visitor_id for pv in pvs}),
                "engaged_s": seconds(sum(pv.engaged_ms for pv in pvs)),
                "avg_engaged_s": seconds(sum(pv.engaged_ms for pv in pvs) / len(pvs)),
                "entries": entries.get(s, 0)}
            for s, pvs in by_section.items()}


def check_sections(q: ReportQuery, ref: Reference) -> None:
    check_table(reports.run("sections", q).tables["sections"], section_figures(ref), "section")


def check_pages(q: ReportQuery, ref: Reference) -> None:
    report = reports.run("pages", q)
    by_path: dict[str, list[Any]] = defaultdict(list)
    for pv in ref.PV:
        by_path[ref.path(pv.page_id)].append(pv)
    check_table(report.tables["top"], {
        p: {"pageviews": len(pvs), "title": ref.pages[pvs[0].page_id].title,
            "visitors": len({ref.visits[pv.visit_id].visitor_id for pv in pvs}),
            "avg_engaged_s": seconds(mean(pv.engaged_ms for pv in pvs))}
        for p, pvs in by_path.items()}, "path")
    entry = ref.grouped(ref.V, lambda v: ref.path(v.entry_page_id))
    check_table(report.tables["entry"], {
        p: {"entries": g["visits"], "visitors": g["visitors"],
            "bounce_rate": share(g["bounces"], g["visits"]),
            "avg_visit_duration_s": seconds(mean(map(ref.duration_ms, g["list"])))}
        for p, g in entry.items()}, "path")
    exits = Counter(ref.path(v.exit_page_id) for v in ref.V)
    check_table(report.tables["exit"], {
        p: {"exits": n, "pageviews": len(by_path.get(p, [])),
            "exit_rate": share(n, len(by_path.get(p, [])))} for p, n in exits.items()},
        "path")


def check_flows(q: ReportQuery, ref: Reference) -> None:
    # Flows keep whole visits: pageviews in the range of visits matching every filter.
    kept = {v.id for v in ref_visits_any_start(ref)}
    views = [pv for pv in ref.all_views if ref.start <= pv.ts < ref.end and pv.visit_id in kept]
    for by, label in (("page", lambda pid: ref.pages[pid].path),
                      ("section", lambda pid: ref.pages[pid].section)):
        counts = Counter(label(pv.page_id) for pv in views)
        if not counts:
            continue
        focus = max(sorted(counts), key=lambda k: counts[k])
        report = reports.run("flows", query(filters=q.filters, by=by, focus=focus))
        focus_views = [pv for pv in views if label(pv.page_id) == focus]
        came = Counter(label(pv.prev_page_id) if pv.prev_page_id else None
                       for pv in focus_views)
        went = Counter(label(pv.page_id) for pv in views
                       if pv.prev_page_id and label(pv.prev_page_id) == focus)
        flow = report.extra["flow"]
        assert flow["total"] == len(focus_views), (by, focus, q.filters)
        assert {x["label"]: x["count"] for x in flow["came_from"]} == \
            _folded(came, "(entrance)"), (by, focus)
        exits = len(focus_views) - sum(went.values())
        assert {x["label"]: x["count"] for x in flow["went_to"]} == \
            _folded(Counter({**went, **({None: exits} if exits else {})}), "(exit)"), (by, focus)
        check_journeys(report.tables["journeys"], ref, label)


def ref_visits_any_start(ref: Reference) -> list[Any]:
    """Visits matching every filter, whatever their start (flows select by pageview time)."""
    f = ref.q.filters
    return [v for v in ref.visits.values() if ref.visit_matches(v) and
            (f.visit_level or any(ref.page_matches(pv) for pv in ref.views_of[v.id]))]


def _folded(counts: Counter, outside: str, limit: int = 6) -> dict[str, int]:
    named = sorted(((k, n) for k, n in counts.items() if k is not None),
                   key=lambda kn: (-kn[1], kn[0]))
    out = dict(named[:limit])
    if sum(n for _, n in named[limit:]):
        out["(other)"] = sum(n for _, n in named[limit:])
    if counts.get(None):
        out[outside] = counts[None]
    return out


def check_journeys(table: Any, ref: Reference, label: Callable[[int], str]) -> None:
    paths: Counter = Counter()
    for v in sorted(ref.V, key=lambda v: v.id):
        steps: list[str] = []
        for pv in ref.views_of[v.id]:
            if not steps or steps[-1] != label(pv.page_id):
                steps.append(label(pv.page_id))
        if steps:
            paths[(*steps[:5], *(["…"] if len(steps) > 5 else []), "(exit)")] += 1
    expected = sorted(paths.items(), key=lambda kv: (-kv[1], kv[0]))[:len(table.rows)]
    assert [(tuple(r["journey"]), r["visits"]) for r in table.rows] == expected
    assert len(table.rows) == min(20, len(paths))


def check_duration(q: ReportQuery, ref: Reference) -> None:
    report = reports.run("duration", q)
    visits = Counter(bucket(ref.duration_ms(v)) for v in ref.V)
    pages = Counter(bucket(pv.engaged_ms) for pv in ref.PV)
    for name, counts in (("visit_durations", visits), ("engaged_per_page", pages)):
        total = sum(counts.values())
        check_table(report.tables[name], {
            label: {"count": counts.get(label, 0), "share": share(counts.get(label, 0), total)}
            for label in LABELS}, "duration")
    by_section: dict[str, Counter] = defaultdict(Counter)
    for pv in ref.PV:
        by_section[ref.pages[pv.page_id].section][bucket(pv.engaged_ms)] += 1
    check_table(report.tables["engaged_by_section"], {
        s: {"total": sum(c.values()), **{label: c.get(label, 0) for label in LABELS}}
        for s, c in by_section.items()}, "section")
    by_entry: dict[str, Counter] = defaultdict(Counter)
    for v in ref.V:
        by_entry[ref.pages[v.entry_page_id].section][bucket(ref.duration_ms(v))] += 1
    check_table(report.tables["visits_by_entry_section"], {
        s: {"total": sum(c.values()), **{label: c.get(label, 0) for label in LABELS}}
        for s, c in by_entry.items()}, "section")


def visit_groups(ref: Reference, key: Callable[[Any], Any]) -> dict[Any, dict[str, Any]]:
    return {k: {"visits": g["visits"], "visitors": g["visitors"],
                "bounce_rate": share(g["bounces"], g["visits"])}
            for k, g in ref.grouped(ref.V, key).items() if k is not None}


def check_sources(q: ReportQuery, ref: Reference) -> None:
    report = reports.run("sources", q)
    check_table(report.tables["referrers"], visit_groups(ref, lambda v: v.referrer_domain),
                "domain")
    for name, column, key in (("utm_campaigns", "utm_campaign", "campaign"),
                              ("utm_sources", "utm_source", "source"),
                              ("utm_mediums", "utm_medium", "medium")):
        check_table(report.tables[name], visit_groups(ref, lambda v, c=column: getattr(v, c)),
                    key)
    total = len(ref.V)
    channels = Counter(channel(v.referrer_domain, v.utm_source, v.utm_medium) for v in ref.V)
    check_table(report.tables["channels"], {
        c: {"visits": n, "share": share(n, total)} for c, n in channels.items()}, "channel")
    engines = Counter(search_engine(v.referrer_domain) for v in ref.V)
    engines.pop(None, None)
    check_table(report.tables["search_engines"], {
        e: {"visits": n, "share": share(n, total)} for e, n in engines.items()}, "engine")


def check_technology(q: ReportQuery, ref: Reference) -> None:
    report = reports.run("technology", q)
    total = len(ref.V)
    for name, keys in (("browsers", ("browser",)), ("os", ("os",)), ("devices", ("device",)),
                       ("browser_versions", ("browser", "browser_version"))):
        groups = ref.grouped(ref.V, lambda v, ks=keys: tuple(getattr(v, k) for k in ks)
                             if len(ks) > 1 else getattr(v, ks[0]))
        check_table(report.tables[name], {
            k: {"visits": g["visits"], "visitors": g["visitors"],
                "share": share(g["visits"], total)} for k, g in groups.items()},
            *(("browser", "version") if len(keys) > 1 else keys))


def check_networks(q: ReportQuery, ref: Reference) -> None:
    report = reports.run("networks", q)
    total = len(ref.V)
    organisations = ref.grouped([v for v in ref.V if v.organization],
                                lambda v: (v.organization, v.asn))
    check_table(report.tables["organisations"], {
        k: {"visits": g["visits"], "visitors": g["visitors"],
            "share": share(g["visits"], total)} for k, g in organisations.items()
        if g["visitors"] >= MIN_NETWORK_VISITORS}, "organisation", "asn")
    domains = ref.grouped([v for v in ref.V if v.dns_name],
                          lambda v: registrable_domain(v.dns_name) or "(unknown)")
    check_table(report.tables["domains"], {
        k: {"visits": g["visits"], "visitors": g["visitors"],
            "share": share(g["visits"], total)} for k, g in domains.items()
        if g["visitors"] >= MIN_NETWORK_VISITORS}, "domain")


def check_locations(q: ReportQuery, ref: Reference) -> None:
    report = reports.run("locations", q)
    consents = {c.id: c for c in db.session.execute(select(Consent.__table__)).all()}
    located = [v for v in ref.V if consents[v.consent_id].location]
    # Without location consent no country is ever stored (the ingest path's promise).
    assert all(v.country is None for v in ref.V if not consents[v.consent_id].location)
    assert report.extra["location_consent"]["with_location_consent"] == len(located)
    countries = ref.grouped(located, lambda v: v.country or "(unknown)")
    check_table(report.tables["countries"], {
        k: {"visits": g["visits"], "visitors": g["visitors"],
            "share": share(g["visits"], len(located))} for k, g in countries.items()},
        "country")
    cities = ref.grouped([v for v in located if v.city], lambda v: (v.country, v.city))
    check_table(report.tables["cities"], {
        k: {"visits": g["visits"], "visitors": g["visitors"]} for k, g in cities.items()},
        "country", "city")


def check_consent(q: ReportQuery) -> None:
    report = reports.run("consent", q)
    start, end = utc(q.range.start), utc(q.range.end + timedelta(days=1))
    given = [c for c in db.session.execute(select(Consent.__table__)).all()
             if start <= c.created_at < end]
    assert given
    methods = Counter(c.method for c in given)
    check_table(report.tables["methods"], {
        m: {"decisions": methods.get(m, 0), "share": share(methods.get(m, 0), len(given))}
        for m in ("accept_all", "refuse_all", "custom")}, "method")
    check_table(report.tables["purposes"], {
        p: {"granted": sum(bool(getattr(c, p)) for c in given),
            "rate": share(sum(bool(getattr(c, p)) for c in given), len(given))}
        for p in ("analytics", "location", "marketing")}, "purpose")
    series = rows_by(report.tables["series"], "bucket")
    for day, row in series.items():
        on_day = [c for c in given if local_label(c.created_at, "day") == day]
        assert row["decisions"] == len(on_day)
        assert row["refuse_all"] == sum(c.method == "refuse_all" for c in on_day)
        for purpose in ("analytics", "location", "marketing"):
            granted = sum(bool(getattr(c, purpose)) for c in on_day)
            assert row[purpose] == granted
            same(row[f"{purpose}_rate"], share(granted, len(on_day)), f"{day} {purpose}")


def check_realtime(q: ReportQuery, ref: Reference) -> None:
    report = reports.run("realtime", q)
    f = q.filters
    active = [v for v in ref.visits.values()
              if NOW - timedelta(minutes=5) <= v.last_seen_at <= NOW and ref.visit_matches(v)
              and (f.visit_level or any(ref.page_matches(pv) for pv in ref.views_of[v.id]))]
    summary = report.tables["summary"].rows[0]
    assert summary == {"visitors": len({v.visitor_id for v in active}), "visits": len(active)}
    if f == Filters():
        assert active, "the demo data has visitors on the site now"
    pages = defaultdict(set)
    for v in active:
        pages[ref.path(v.exit_page_id)].add(v.visitor_id)
    check_table(report.tables["pages"], {p: {"visitors": len(s)} for p, s in pages.items()},
                "path")
    minutes = report.tables["minutes"].rows
    assert len(minutes) == 31
    recent = [pv for pv in ref.all_views if NOW - timedelta(minutes=30) <= pv.ts <= NOW
              and ref.visit_matches(ref.visits[pv.visit_id]) and ref.page_matches(pv)]
    assert sum(m["pageviews"] for m in minutes) == len(recent)


# -- known answers ----------------------------------------------------------------------


@pytest.fixture
def fixed_flows(app):
    """v1: /a -> /b -> exit; v2: /a (bounce); v3: /b -> /a -> /b -> exit; all on 2026-03-10."""
    t = Traffic()
    day = datetime(2026, 3, 10, 9, 0)  # 10:00 in Paris
    v1, v2, v3 = (t.visitor(day), t.visitor(day), t.visitor(day))
    t.visit(v1, day, [("/a", 0, 30_000), ("/b", 60, 45_000)])
    t.visit(v2, day + timedelta(hours=1), [("/a", 0, 10_000)],
            referrer="https://www.google.fr/")
    t.visit(v3, day + timedelta(hours=2), [("/b", 0, 5_000), ("/a", 20, 8_000),
                                          ("/b", 50, 20_000)],
            utm="utm_source=newsletter&utm_medium=email&utm_campaign=mars")
    t.store()
    return DateRange(date(2026, 3, 10), date(2026, 3, 10))


def test_known_flow_a_to_b_to_exit(fixed_flows):
    q = query(fixed_flows, granularity="hour")
    summary = rows_by(reports.run("overview", q).tables["summary"], "metric")
    assert {m: r["value"] for m, r in summary.items()} == {
        "visitors": 3, "visits": 3, "pageviews": 6, "pages_per_visit": 2.0,
        "bounce_rate": pytest.approx(1 / 3), "avg_visit_duration_s": round(
            (105 + 10 + 70) / 3, 1),
        "avg_engaged_per_page_s": round((30 + 45 + 10 + 5 + 8 + 20) / 6, 1)}
    flow_a = reports.run("flows", query(fixed_flows, focus="/a")).extra["flow"]
    assert flow_a["total"] == 3
    assert [(x["label"], x["count"]) for x in flow_a["came_from"]] == [
        ("(entrance)", 2), ("/b", 1)]
    assert [(x["label"], x["count"]) for x in flow_a["went_to"]] == [("/b", 2), ("(exit)", 1)]
    flow_b = reports.run("flows", query(fixed_flows, focus="/b"))
    assert [(x["label"], x["count"]) for x in flow_b.extra["flow"]["came_from"]] == [
        ("(entrance)", 1), ("/a", 2)]
    assert [(x["label"], x["count"]) for x in flow_b.extra["flow"]["went_to"]] == [
        ("/a", 1), ("(exit)", 2)]
    assert [(r["journey"], r["visits"]) for r in flow_b.tables["journeys"].rows] == [
        (["/a", "(exit)"], 1), (["/a", "/b", "(exit)"], 1), (["/b", "/a", "/b", "(exit)"], 1)]
    pages = reports.run("pages", q)
    assert {r["path"]: r["entries"] for r in pages.tables["entry"].rows} == {"/a": 2, "/b": 1}
    assert {r["path"]: (r["exits"], r["exit_rate"]) for r in pages.tables["exit"].rows} == {
        "/b": (2, pytest.approx(2 / 3)), "/a": (1, pytest.approx(1 / 3))}
    durations = rows_by(reports.run("duration", q).tables["visit_durations"], "duration")
    # 10 s exactly is in 10-30s; 70 s and 105 s in 1-3min.
    assert {k: r["count"] for k, r in durations.items() if r["count"]} == {
        "10-30s": 1, "1-3min": 2}
    hours = {r["bucket"]: r["visits"] for r in
             reports.run("overview", q).tables["series"].rows if r["visits"]}
    assert hours == {"2026-03-10 10:00": 1, "2026-03-10 11:00": 1, "2026-03-10 12:00": 1}
    sources = reports.run("sources", q)
    assert {r["channel"]: r["visits"] for r in sources.tables["channels"].rows} == {
        "Direct": 1, "Search": 1, "Email": 1}
    only_b = reports.run("overview", query(fixed_flows, filters=Filters(page="/b")))
    figures = {r["metric"]: r["value"] for r in only_b.tables["summary"].rows}
    assert (figures["visits"], figures["pageviews"]) == (2, 3)


def test_section_rules_apply_to_past_traffic(fixed_flows):
    rules = parse_section_rules("/a=Alpha,re:^/b$=Beta")
    renamed = reports.run("sections", query(fixed_flows, section_rules=rules))
    assert {r["section"]: r["pageviews"] for r in renamed.tables["sections"].rows} == {
        "Alpha": 3, "Beta": 3}
    assert db.session.scalar(select(Page.section).where(Page.path == "/a")) == "Alpha"
    flows = reports.run("flows", query(fixed_flows, section_rules=rules, by="section",
                                       focus="Beta"))
    assert flows.extra["flow"]["total"] == 3
    default = reports.run("sections", query(fixed_flows))
    assert {r["section"] for r in default.tables["sections"].rows} == {"a", "b"}


def test_reports_never_name_an_individual(fixed_flows):
    # The ingest path stored IPs, visitor ids and DNS names; no report may show them.
    secrets_ = set()
    for v in db.session.execute(select(Visit.__table__)).all():
        secrets_ |= {v.ip, v.visitor_id, v.dns_name, v.consent_id}
    secrets_.discard(None)
    assert secrets_
    import json

    for name in reports.REPORTS:
        text = json.dumps(reports.run(name, query(fixed_flows)).as_dict(), default=str)
        assert not [s for s in secrets_ if s in text], name


def test_networks_show_only_those_several_visitors_came_from(fixed_flows):
    # fixed_flows: three visitors from one Bredband2 address. Add one visitor from a Sunrise
    # address and one whose address resolves to a name of its own: each alone on its network.
    day = datetime(2026, 3, 10, 15, 0)
    t = Traffic()
    t.visit(t.visitor(day), day, [("/a", 0, 0)], ip="2001:1700::1")
    t.visit(t.visitor(day), day + timedelta(minutes=5), [("/a", 0, 0)], ip="192.0.2.7")
    t.store()
    assert MIN_NETWORK_VISITORS > 1
    report = reports.run("networks", query(fixed_flows))
    assert [(r["organisation"], r["visitors"]) for r in report.tables["organisations"].rows] \
        == [("Bredband2 AB", 3)]
    assert [(r["domain"], r["visitors"]) for r in report.tables["domains"].rows] \
        == [("bredband2.se", 3)]
    # They still count in the total the shares are taken of.
    assert report.extra["notes"]["visits"] == 5
