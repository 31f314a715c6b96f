"""Pure report rules: ranges and buckets in the site's time zone, filters, section rules,
source classification, flow assembly and journeys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.domain.reports import (
    DURATION_LABELS,
    ENTRANCE,
    EXIT,
    OTHER,
    DateRange,
    Filters,
    ReportError,
    assemble_flow,
    auto_granularity,
    bucket_label,
    bucket_labels,
    channel,
    duration_bucket,
    journeys,
    layout_flow,
    offset_segments,
    parse_filters,
    parse_granularity,
    parse_options,
    parse_range,
    parse_section_rules,
    preset_range,
    search_engine,
    social_network,
)
from tracker.domain.visits import SectionRule, section_of

PARIS = ZoneInfo("Europe/Paris")


def test_range_bounds_are_local_midnights_across_dst():
    # 2026-03-29: Paris moves from UTC+1 to UTC+2; the day has 23 hours.
    start, end = DateRange(date(2026, 3, 29), date(2026, 3, 29)).utc_bounds(PARIS)
    assert start == datetime(2026, 3, 28, 23, 0)
    assert end == datetime(2026, 3, 29, 22, 0)
    assert len(bucket_labels(DateRange(date(2026, 3, 29), date(2026, 3, 29)), "hour",
                             PARIS)) == 23
    # 2026-10-25 has 25 hours, but the repeated 02:00 is one bucket label.
    autumn = DateRange(date(2026, 10, 25), date(2026, 10, 25))
    assert len(bucket_labels(autumn, "hour", PARIS)) == 24


def test_previous_period_has_the_same_length_just_before():
    period = DateRange(date(2026, 3, 1), date(2026, 3, 31))
    assert period.previous() == DateRange(date(2026, 1, 29), date(2026, 2, 28))
    assert period.previous().days == period.days == 31


@pytest.mark.parametrize(("preset", "expected"), [
    ("today", (date(2026, 3, 15), date(2026, 3, 15))),
    ("yesterday", (date(2026, 3, 14), date(2026, 3, 14))),
    ("7d", (date(2026, 3, 9), date(2026, 3, 15))),
    ("30d", (date(2026, 2, 14), date(2026, 3, 15))),
    ("month", (date(2026, 3, 1), date(2026, 3, 15))),
    ("last_month", (date(2026, 2, 1), date(2026, 2, 28))),
    ("12mo", (date(2025, 3, 16), date(2026, 3, 15))),
])
def test_presets(preset, expected):
    period = preset_range(preset, date(2026, 3, 15))
    assert (period.start, period.end) == expected


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "2026-13-01", "to": "2026-01-01"}, "from"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),
    ({"from": "2019-01-01", "to": "2026-01-01"}, "to"),
    ({"preset": "forever"}, "preset"),
])
def test_bad_ranges_name_the_parameter(params, field):
    with pytest.raises(ReportError) as caught:
        parse_range(params, date(2026, 3, 15))
    assert caught.value.field == field


def test_range_defaults_and_explicit_dates():
    period, preset = parse_range({}, date(2026, 3, 15))
    assert preset == "30d" and period.end == date(2026, 3, 15)
    period, preset = parse_range({"from": "2026-03-01"}, date(2026, 3, 15))
    assert preset is None and (period.start, period.end) == (date(2026, 3, 1),
                                                             date(2026, 3, 15))


def test_granularity():
    assert auto_granularity(DateRange(date(2026, 1, 1), date(2026, 1, 2))) == "hour"
    assert auto_granularity(DateRange(date(2026, 1, 1), date(2026, 3, 1))) == "day"
    assert auto_granularity(DateRange(date(2026, 1, 1), date(2026, 12, 31))) == "week"
    assert auto_granularity(DateRange(date(2024, 1, 1), date(2026, 1, 1))) == "month"
    with pytest.raises(ReportError, match="hours"):
        parse_granularity("hour", DateRange(date(2026, 1, 1), date(2026, 3, 1)))
    with pytest.raises(ReportError):
        parse_granularity("minute", DateRange(date(2026, 1, 1), date(2026, 1, 2)))


def test_week_and_month_labels():
    period = DateRange(date(2026, 3, 28), date(2026, 4, 7))  # Saturday .. Tuesday
    assert bucket_labels(period, "week", PARIS) == ["2026-03-23", "2026-03-30", "2026-04-06"]
    assert bucket_labels(period, "month", PARIS) == ["2026-03", "2026-04"]
    # Sunday 23:30 UTC is already Monday in Paris.
    assert bucket_label(datetime(2026, 3, 29, 22, 30), "week", PARIS) == "2026-03-30"


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
       st.integers(min_value=1, max_value=400 * 24),
       st.sampled_from(["Europe/Paris", "America/New_York", "Australia/Lord_Howe",
                        "Asia/Kolkata", "UTC"]))
def test_offset_segments_match_the_time_zone(start, hours, name):
    tz = ZoneInfo(name)
    end = start + timedelta(hours=hours)
    segments = offset_segments(tz, start, end)
    assert segments[-1][0] is None
    # Every instant takes the offset of the first piece it is before.
    probes = [start, end - timedelta(seconds=1)] + [u for u, _ in segments[:-1]] + \
        [u - timedelta(seconds=1) for u, _ in segments[:-1]]
    for at in probes:
        if not start <= at < end:
            continue
        offset = next(s for u, s in segments if u is None or at < u)
        expected = at.replace(tzinfo=UTC).astimezone(tz).utcoffset().total_seconds()
        assert offset == expected, at


def test_duration_buckets_boundaries():
    assert DURATION_LABELS[duration_bucket(0)] == "0-10s"
    assert DURATION_LABELS[duration_bucket(9_999)] == "0-10s"
    assert DURATION_LABELS[duration_bucket(10_000)] == "10-30s"
    assert DURATION_LABELS[duration_bucket(179_999)] == "1-3min"
    assert DURATION_LABELS[duration_bucket(1_800_000)] == "30min+"


def test_filters():
    filters = parse_filters({"browser": " Firefox ", "country": "fr", "page": "/a",
                             "device": ""})
    assert filters == Filters(browser="Firefox", country="FR", page="/a")
    assert filters.active() == [("page", "/a"), ("browser", "Firefox"), ("country", "FR")]
    assert not filters.visit_level and Filters(browser="x").visit_level
    for params, field in [({"country": "France"}, "country"), ({"page": "a"}, "page"),
                          ({"source": "x" * 600}, "source")]:
        with pytest.raises(ReportError) as caught:
            parse_filters(params)
        assert caught.value.field == field
    assert parse_options({"by": "section", "limit": "5"}) == {"by": "section", "focus": None,
                                                              "limit": 5}
    with pytest.raises(ReportError):
        parse_options({"limit": "0"})


def test_section_rules():
    rules = parse_section_rules("/projets/=Projets, re:^/journal/\\d{4,}=Archives\n"
                                "re:^/a{1,3}/$=Courts")
    assert rules == (SectionRule("/projets/", "Projets"),
                     SectionRule("re:^/journal/\\d{4,}", "Archives"),
                     SectionRule("re:^/a{1,3}/$", "Courts"))
    assert section_of("/projets/x", rules) == "Projets"
    assert section_of("/journal/2024", rules) == "Archives"
    assert section_of("/journal/", rules) == "journal"
    assert section_of("/aa/", rules) == "Courts"
    assert parse_section_rules("") == ()
    for bad in ("projets=Projets", "/a=", "re:(=X", "/a"):
        with pytest.raises(ValueError, match="section rule"):
            parse_section_rules(bad)


@pytest.mark.parametrize(("domain", "engine"), [
    ("google.fr", "Google"), ("google.co.uk", "Google"), ("images.google.com", "Google"),
    ("mail.google.com", None), ("googleusercontent.com", None), ("bing.com", "Bing"),
    ("duckduckgo.com", "DuckDuckGo"), ("qwant.com", "Qwant"), ("search.brave.com", "Brave"),
    ("linkedin.com", None), (None, None),
])
def test_search_engines(domain, engine):
    assert search_engine(domain) == engine


@pytest.mark.parametrize(("referrer", "source", "medium", "expected"), [
    (None, None, None, "Direct"),
    ("google.fr", None, None, "Search"),
    ("l.instagram.com", None, None, "Social"),
    ("lnkd.in", None, None, "Social"),
    ("ville-saint-junien.fr", None, None, "Referral"),
    (None, "newsletter", "email", "Email"),
    ("linkedin.com", "linkedin", "cpc", "Paid"),
    (None, "instagram", None, "Social"),
    (None, "salon-2026", "print", "Campaign"),
    ("bing.com", "x", "organic", "Search"),
])
def test_channels(referrer, source, medium, expected):
    assert channel(referrer, source, medium) == expected
    assert social_network("behance.net") == "Behance"


def test_assemble_flow_folds_the_tail_and_counts_exits():
    flow = assemble_flow("page", "/a", 10, {None: 3, "/b": 4, "/c": 2, "/d": 1},
                         {"/b": 5, "/c": 1}, limit=2)
    assert [(x.label, x.count, x.kind) for x in flow.came_from] == [
        (ENTRANCE, 3, "entrance"), ("/b", 4, "node"), ("/c", 2, "node"), (OTHER, 1, "other")]
    assert [(x.label, x.count, x.kind) for x in flow.went_to] == [
        ("/b", 5, "node"), ("/c", 1, "node"), (EXIT, 4, "exit")]
    diagram = layout_flow(flow)
    assert len(diagram.ribbons) == len(flow.came_from) + len(flow.went_to)
    focus = next(b for b in diagram.boxes if b.side == "focus")
    left = [b for b in diagram.boxes if b.side == "left"]
    # Ribbon widths add up to the focus box on each side.
    assert sum(b.height for b in left) == pytest.approx(focus.height)
    assert all(b.y + b.height <= diagram.height for b in diagram.boxes)


def test_journeys_collapse_repeats_and_truncate():
    steps = [(1, "/"), (1, "/a"), (1, "/a"), (1, "/b"),
             (2, "/"), (2, "/a"), (2, "/b"),
             (3, "/"),
             (4, "1"), (4, "2"), (4, "3"), (4, "4"), (4, "5"), (4, "6")]
    assert journeys(steps, max_steps=5) == [
        (("/", "/a", "/b", EXIT), 2), (("/", EXIT), 1),
        (("1", "2", "3", "4", "5", "…", EXIT), 1)]
