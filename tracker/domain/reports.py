"""Pure rules of the staff reports: date ranges in the site's time zone, time buckets,
duration buckets, filters, section rules, source classification and flow assembly.

Nothing here touches Flask or SQL; `tracker.services.reports` turns these rules into
queries, and the web layer turns the result structures into pages, JSON and CSV.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tracker.domain.visits import SectionRule


class ReportError(ValueError):
    """A report request that cannot be answered; `field` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# -- time zone and date ranges ----------------------------------------------------------

# A longer range is refused: every report scans its rows, and 3 years is plenty for staff.
MAX_RANGE_DAYS = 1100
PRESETS = ("today", "yesterday", "7d", "30d", "90d", "month", "last_month", "12mo")
DEFAULT_PRESET = "30d"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name`; ReportError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReportError("timezone", f"unknown time zone {name!r}") from exc


def local_date(at_utc: datetime, tz: ZoneInfo) -> date:
    """The site's calendar date at the naive-UTC instant `at_utc`."""
    return at_utc.replace(tzinfo=UTC).astimezone(tz).date()


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """The naive-UTC instant at which `day` begins in the site's time zone."""
    local = datetime(day.year, day.month, day.day, tzinfo=tz)
    return local.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class DateRange:
    """Whole days `start`..`end`, both included, in the site's time zone."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ReportError("to", "must not be before `from`")
        if self.days > MAX_RANGE_DAYS:
            raise ReportError("to", f"a range may cover at most {MAX_RANGE_DAYS} days")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> DateRange:
        """The period of equal length just before this one."""
        return DateRange(self.start - timedelta(days=self.days),
                         self.start - timedelta(days=1))

    def utc_bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """Naive-UTC [start, end) instants covering the range's local days."""
        return (local_midnight_utc(self.start, tz),
                local_midnight_utc(self.end + timedelta(days=1), tz))


def preset_range(name: str, today: date) -> DateRange:
    """The range a preset names, relative to the site's `today`."""
    if name == "today":
        return DateRange(today, today)
    if name == "yesterday":
        day = today - timedelta(days=1)
        return DateRange(day, day)
    if name in ("7d", "30d", "90d"):
        return DateRange(today - timedelta(days=int(name[:-1]) - 1), today)
    if name == "month":
        return DateRange(today.replace(day=1), today)
    if name == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return DateRange(last.replace(day=1), last)
    if name == "12mo":
        return DateRange(today - timedelta(days=364), today)
    raise ReportError("preset", f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")


def _parse_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ReportError(name, "must be a date written YYYY-MM-DD") from exc


def parse_range(params: Mapping[str, str], today: date) -> tuple[DateRange, str | None]:
    """The range asked by `from`/`to` (YYYY-MM-DD) or `preset`; the default is 30 days.

    Returns the range and the preset it came from (None for explicit dates).
    """
    start, end = params.get("from") or "", params.get("to") or ""
    if start or end:
        first = _parse_date(start, "from") if start else None
        last = _parse_date(end, "to") if end else today
        return DateRange(first or last, last), None
    preset = params.get("preset") or DEFAULT_PRESET
    return preset_range(preset, today), preset


# -- time buckets -----------------------------------------------------------------------

GRANULARITIES = ("hour", "day", "week", "month")
# Hourly series longer than this are unreadable and slow; ask for days instead.
MAX_HOURLY_DAYS = 31
BUCKET_FORMATS = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "week": "%Y-%m-%d",
                  "month": "%Y-%m"}


def auto_granularity(period: DateRange) -> str:
    """The bucket size that gives a readable series for this range."""
    if period.days <= 2:
        return "hour"
    if period.days <= 92:
        return "day"
    return "week" if period.days <= 400 else "month"


def parse_granularity(value: str | None, period: DateRange) -> str:
    """Validate a `granularity` parameter; empty means automatic."""
    if not value:
        return auto_granularity(period)
    if value not in GRANULARITIES:
        raise ReportError("granularity", f"must be one of {', '.join(GRANULARITIES)}")
    if value == "hour" and period.days > MAX_HOURLY_DAYS:
        raise ReportError("granularity", f"hours are available for {MAX_HOURLY_DAYS} days "
                          "at most; choose day, week or month")
    return value


def bucket_label(at_utc: datetime, granularity: str, tz: ZoneInfo) -> str:
    """The label of the local bucket holding the naive-UTC instant `at_utc`."""
    local = at_utc.replace(tzinfo=UTC).astimezone(tz)
    if granularity == "week":
        local = local - timedelta(days=local.weekday())
    return local.strftime(BUCKET_FORMATS[granularity])


def minute_label(at_utc: datetime, tz: ZoneInfo) -> str:
    """The local minute `YYYY-MM-DD HH:MM` of a naive-UTC instant."""
    return at_utc.replace(tzinfo=UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def bucket_labels(period: DateRange, granularity: str, tz: ZoneInfo) -> list[str]:
    """Every bucket label of the range, in order (so empty buckets show as zero)."""
    if granularity == "hour":
        start, end = period.utc_bounds(tz)
        labels: dict[str, None] = {}
        at = start
        while at < end:
            labels[bucket_label(at, "hour", tz)] = None
            at += timedelta(hours=1)
        return list(labels)
    days = (period.start + timedelta(days=n) for n in range(period.days))
    out: dict[str, None] = {}
    for day in days:
        if granularity == "week":
            day = day - timedelta(days=day.weekday())
        out[day.strftime(BUCKET_FORMATS[granularity])] = None
    return list(out)


def offset_segments(tz: ZoneInfo, start: datetime, end: datetime) -> list[tuple[datetime | None,
                                                                                  int]]:
    """The site's UTC offset over naive-UTC [start, end), as (until, seconds) pieces.

    The last piece has `until=None`. SQL adds the offset of the piece a timestamp falls in
    to get local time, which keeps hour and day buckets right across DST changes.
    """

    def offset(at: datetime) -> int:
        delta = at.replace(tzinfo=UTC).astimezone(tz).utcoffset()
        return int(delta.total_seconds()) if delta else 0

    segments: list[tuple[datetime | None, int]] = []
    current = offset(start)
    probe = start
    step = timedelta(hours=6)  # offsets never change twice within 6 hours
    while probe < end:
        nxt = min(probe + step, end)
        if offset(nxt) != current:
            low, high = probe, nxt  # bisect to the second of the change
            while high - low > timedelta(seconds=1):
                mid = low + (high - low) / 2
                if offset(mid) == current:
                    low = mid
                else:
                    high = mid
            change = high.replace(microsecond=0)
            if offset(change) == current:
                change += timedelta(seconds=1)
            segments.append((change, current))
            current = offset(change)
        probe = nxt
    segments.append((None, current))
    return segments


# -- durations --------------------------------------------------------------------------

# Upper bounds (seconds) of each bucket but the last, which is open.
DURATION_BOUNDS = (10, 30, 60, 180, 600, 1800)
DURATION_LABELS = ("0-10s", "10-30s", "30-60s", "1-3min", "3-10min", "10-30min", "30min+")


def duration_bucket(ms: int | float) -> int:
    """Index into DURATION_LABELS of a duration in milliseconds."""
    for index, bound in enumerate(DURATION_BOUNDS):
        if ms < bound * 1000:
            return index
    return len(DURATION_BOUNDS)


def ratio(part: float | None, whole: float | None) -> float | None:
    """part / whole, or None when there is no whole."""
    if not whole or part is None:
        return None
    return part / whole


def change(current: float | None, previous: float | None) -> float | None:
    """Relative change from the previous period; None when it had nothing to compare."""
    if current is None or not previous:
        return None
    return (current - previous) / previous


# -- filters ----------------------------------------------------------------------------

FILTER_KEYS = ("section", "page", "source", "browser", "device", "country")
MAX_FILTER_LENGTH = 512
# The `source` filter value for visits with neither a referrer nor a UTM source.
DIRECT = "(direct)"


@dataclass(frozen=True, slots=True)
class Filters:
    """Conditions every report applies together; None means "any"."""

    section: str | None = None
    page: str | None = None
    source: str | None = None
    browser: str | None = None
    device: str | None = None
    country: str | None = None

    def active(self) -> list[tuple[str, str]]:
        """The set filters as (key, value), in FILTER_KEYS order."""
        return [(k, v) for k in FILTER_KEYS if (v := getattr(self, k)) is not None]

    def with_value(self, key: str, value: str | None) -> Filters:
        return replace(self, **{key: value})

    def as_params(self) -> dict[str, str]:
        return dict(self.active())

    @property
    def visit_level(self) -> bool:
        """True when only visit attributes are filtered (no page or section)."""
        return self.page is None and self.section is None


def parse_filters(params: Mapping[str, str]) -> Filters:
    """Read the filters from request parameters; empty values are ignored."""
    values: dict[str, str] = {}
    for key in FILTER_KEYS:
        value = (params.get(key) or "").strip()
        if not value:
            continue
        if len(value) > MAX_FILTER_LENGTH:
            raise ReportError(key, f"must be at most {MAX_FILTER_LENGTH} characters")
        values[key] = value
    if "page" in values and not values["page"].startswith("/"):
        raise ReportError("page", "must be a path starting with /")
    if "country" in values:
        if not re.fullmatch(r"[A-Za-z]{2}", values["country"]):
            raise ReportError("country", "must be a two-letter ISO country code")
        values["country"] = values["country"].upper()
    return Filters(**values)


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """What a report is asked for: the range, bucket size, filters and a few options."""

    range: DateRange
    granularity: str = "day"
    filters: Filters = field(default_factory=Filters)
    timezone: str = "Europe/Paris"
    # Naive UTC "now", for the realtime report; None means the clock's time.
    now: datetime | None = None
    # Flows: the page path (or section name, when `by` is "section") to centre on.
    focus: str | None = None
    by: str = "page"
    limit: int = 50
    # Section rules of the site, so rule changes apply to past pages too.
    section_rules: tuple[SectionRule, ...] = ()
    # Where figures come from: "auto" (rollups when the range is large enough to need them),
    # "raw" (the stored rows only) or "rollups" (whenever they can answer).
    source: str = "auto"

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)


FLOW_BY = ("page", "section")
MAX_LIMIT = 1000
# A network (an organisation, or the domain of reverse-DNS names) is shown only when at least
# this many distinct visitors came from it: with fewer, a row can point at one household, one
# small firm or one person's own domain, and the report promises never to show an individual.
MIN_NETWORK_VISITORS = 3


def parse_options(params: Mapping[str, str]) -> dict[str, Any]:
    """The optional `focus`, `by` and `limit` parameters."""
    by = params.get("by") or "page"
    if by not in FLOW_BY:
        raise ReportError("by", "must be page or section")
    focus = (params.get("focus") or "").strip() or None
    if focus is not None and len(focus) > MAX_FILTER_LENGTH:
        raise ReportError("focus", f"must be at most {MAX_FILTER_LENGTH} characters")
    raw_limit = params.get("limit") or ""
    limit = 50
    if raw_limit:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise ReportError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
    return {"by": by, "focus": focus, "limit": limit}


# -- section rules ----------------------------------------------------------------------

MAX_SECTION_NAME = 64


def parse_section_rules(text: str) -> tuple[SectionRule, ...]:
    """Parse `/projets/=Projets,re:^/journal/=Journal` into rules, in order.

    Rules are separated by commas or new lines; the section name follows the last `=`. A
    piece without `=` is joined to the next one, so a regular expression may hold commas.
    """
    pieces = [p for line in text.splitlines() for p in line.split(",")]
    rules: list[SectionRule] = []
    pending = ""
    for piece in pieces:
        item = f"{pending},{piece}" if pending else piece
        if "=" not in item:
            pending = item
            continue
        pending = ""
        pattern, _, name = item.strip().rpartition("=")
        pattern, name = pattern.strip(), name.strip()
        if not pattern.startswith(("/", "re:")):
            raise ValueError(f"section rule {item.strip()!r}: the pattern must be a path "
                             "prefix starting with / or a regular expression starting with re:")
        if not name or len(name) > MAX_SECTION_NAME:
            raise ValueError(f"section rule {item.strip()!r}: the section name must have 1 "
                             f"to {MAX_SECTION_NAME} characters")
        if pattern.startswith("re:"):
            try:
                re.compile(pattern[3:])
            except re.error as exc:
                raise ValueError(f"section rule {item.strip()!r}: {exc}") from exc
        rules.append(SectionRule(pattern, name))
    if pending.strip():
        raise ValueError(f"section rule {pending.strip()!r} has no `=Section` part")
    return tuple(rules)


# -- sources ----------------------------------------------------------------------------

_SEARCH_ENGINES = (
    ("Google", re.compile(r"(^|\.)google\.(com?\.)?[a-z]{2,3}$")),
    ("Bing", re.compile(r"(^|\.)bing\.com$")),
    ("DuckDuckGo", re.compile(r"(^|\.)duckduckgo\.com$")),
    ("Qwant", re.compile(r"(^|\.)qwant\.com$")),
    ("Ecosia", re.compile(r"(^|\.)ecosia\.org$")),
    ("Yahoo", re.compile(r"(^|\.)search\.yahoo\.[a-z.]+$|^yahoo\.com$")),
    ("Yandex", re.compile(r"(^|\.)yandex\.[a-z.]+$")),
    ("Baidu", re.compile(r"(^|\.)baidu\.com$")),
    ("Brave", re.compile(r"^search\.brave\.com$")),
    ("Startpage", re.compile(r"(^|\.)startpage\.com$")),
    ("Lilo", re.compile(r"(^|\.)lilo\.org$")),
)
# Google's other services refer too, but nobody searched there.
_NOT_SEARCH = re.compile(r"^(mail|docs|drive|calendar|meet|accounts)\.google\.")
_SOCIAL = (
    ("LinkedIn", re.compile(r"(^|\.)(linkedin\.com|lnkd\.in)$")),
    ("Instagram", re.compile(r"(^|\.)instagram\.com$")),
    ("Facebook", re.compile(r"(^|\.)(facebook\.com|fb\.me)$")),
    ("Behance", re.compile(r"(^|\.)behance\.net$")),
    ("Pinterest", re.compile(r"(^|\.)pinterest\.[a-z.]+$|(^|\.)pin\.it$")),
    ("X", re.compile(r"(^|\.)(twitter\.com|x\.com|t\.co)$")),
    ("YouTube", re.compile(r"(^|\.)(youtube\.com|youtu\.be)$")),
    ("Dribbble", re.compile(r"(^|\.)dribbble\.com$")),
    ("Bluesky", re.compile(r"(^|\.)bsky\.app$")),
    ("Mastodon", re.compile(r"(^|\.)mastodon\.[a-z.]+$")),
    ("TikTok", re.compile(r"(^|\.)tiktok\.com$")),
    ("Reddit", re.compile(r"(^|\.)reddit\.com$")),
)
CHANNELS = ("Direct", "Search", "Social", "Email", "Paid", "Referral", "Campaign")
_PAID = {"cpc", "ppc", "paid", "paidsearch", "paid-search", "paid_social", "paid-social",
         "display", "cpm", "banner", "retargeting"}
_EMAIL = {"email", "e-mail", "mail", "newsletter"}
_SOCIAL_MEDIUMS = {"social", "social-network", "social-media", "sm", "social_media"}


def search_engine(domain: str | None) -> str | None:
    """The search engine a referring domain belongs to, or None."""
    if not domain:
        return None
    name = domain.lower()
    if _NOT_SEARCH.match(name):
        return None
    return next((label for label, pattern in _SEARCH_ENGINES if pattern.search(name)), None)


def social_network(domain: str | None) -> str | None:
    """The social network a referring domain (or UTM source) belongs to, or None."""
    if not domain:
        return None
    name = domain.lower()
    hit = next((label for label, pattern in _SOCIAL if pattern.search(name)), None)
    if hit is None:  # UTM sources name the network without a domain: "linkedin"
        hit = next((label for label, _ in _SOCIAL if label.lower() == name), None)
    return hit


def channel(referrer_domain: str | None, utm_source: str | None,
            utm_medium: str | None) -> str:
    """Classify a visit's origin into one of CHANNELS; UTM parameters win over the referrer."""
    medium = (utm_medium or "").lower()
    source = (utm_source or "").lower()
    if medium in _PAID:
        return "Paid"
    if medium in _EMAIL or source in _EMAIL:
        return "Email"
    if medium in _SOCIAL_MEDIUMS:
        return "Social"
    if medium == "organic" or search_engine(referrer_domain):
        return "Search"
    if social_network(referrer_domain) or social_network(utm_source):
        return "Social"
    if referrer_domain:
        return "Referral"
    return "Campaign" if utm_source or utm_medium else "Direct"


# -- result structures ------------------------------------------------------------------

COLUMN_KINDS = ("text", "int", "number", "rate", "seconds", "change", "path")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a report table; `drill` names the filter a click on the row sets."""

    key: str
    kind: str = "int"
    drill: str | None = None


@dataclass(slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"columns": [{"key": c.key, "kind": c.kind} for c in self.columns],
                "rows": self.rows}


@dataclass(slots=True)
class Report:
    """A report's answer: named tables, plus extras (a flow diagram, notes) for the page."""

    name: str
    query: ReportQuery
    tables: dict[str, Table]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; no individual's identifier is ever part of a report."""
        q = self.query
        data = {
            "report": self.name,
            "from": q.range.start.isoformat(),
            "to": q.range.end.isoformat(),
            "timezone": q.timezone,
            "granularity": q.granularity,
            "filters": q.filters.as_params(),
            "tables": {name: table.as_dict() for name, table in self.tables.items()},
        }
        data.update({k: v for k, v in self.extra.items() if k in JSON_EXTRAS})
        return data


# Extras that belong to the JSON answer (others are only for the HTML page).
JSON_EXTRAS = ("flow", "notes", "location_consent", "previous")


def table(name: str, columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> Table:
    """A Table whose rows hold exactly its columns' keys."""
    keys = [c.key for c in columns]
    return Table(name, tuple(columns), [{k: row.get(k) for k in keys} for row in rows])


# -- flows ------------------------------------------------------------------------------

ENTRANCE = "(entrance)"
EXIT = "(exit)"
OTHER = "(other)"


@dataclass(frozen=True, slots=True)
class FlowLink:
    """Pageviews arriving from (or leaving to) one page or section."""

    label: str
    count: int
    kind: str  # "node", "entrance", "exit" or "other"


@dataclass(frozen=True, slots=True)
class Flow:
    by: str
    focus: str
    total: int
    came_from: tuple[FlowLink, ...]
    went_to: tuple[FlowLink, ...]

    def as_dict(self) -> dict[str, Any]:
        def links(items: tuple[FlowLink, ...]) -> list[dict[str, Any]]:
            return [{"label": x.label, "count": x.count, "kind": x.kind} for x in items]

        return {"by": self.by, "focus": self.focus, "total": self.total,
                "came_from": links(self.came_from), "went_to": links(self.went_to)}


def _top_links(counts: Mapping[str, int], limit: int) -> list[FlowLink]:
    ranked = sorted(((k, v) for k, v in counts.items() if v > 0), key=lambda kv: (-kv[1], kv[0]))
    links = [FlowLink(label, count, "node") for label, count in ranked[:limit]]
    rest = sum(count for _, count in ranked[limit:])
    if rest:
        links.append(FlowLink(OTHER, rest, "other"))
    return links


def assemble_flow(by: str, focus: str, total: int, came_from: Mapping[str | None, int],
                  went_to: Mapping[str, int], limit: int = 6) -> Flow:
    """Where the focus's pageviews came from and went next, the rest folded into "other".

    `came_from` counts focus pageviews by previous page (None: the visit started there);
    `went_to` counts the pageviews that followed one. Pageviews with no follower are exits.
    """
    entrances = came_from.get(None, 0)
    sources = _top_links({k: v for k, v in came_from.items() if k is not None}, limit)
    if entrances:
        sources.insert(0, FlowLink(ENTRANCE, entrances, "entrance"))
    targets = _top_links(went_to, limit)
    exits = max(total - sum(went_to.values()), 0)
    if exits:
        targets.append(FlowLink(EXIT, exits, "exit"))
    return Flow(by, focus, total, tuple(sources), tuple(targets))


@dataclass(frozen=True, slots=True)
class FlowBox:
    x: float
    y: float
    width: float
    height: float
    label_y: float
    label: str
    count: int
    kind: str
    side: str  # "left", "focus" or "right"


@dataclass(frozen=True, slots=True)
class FlowRibbon:
    path: str
    kind: str
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class FlowDiagram:
    width: int
    height: int
    boxes: tuple[FlowBox, ...]
    ribbons: tuple[FlowRibbon, ...]


FLOW_WIDTH = 960
BOX_WIDTH = 14
# Each row gets at least this many pixels so its label stays readable.
MIN_SLOT = 26
GAP = 6
FLOW_SCALE_HEIGHT = 300


def _column(links: Sequence[FlowLink], x: float, scale: float) -> list[FlowBox]:
    boxes, y = [], 0.0
    for link in links:
        height = max(link.count * scale, 2.0)
        slot = max(height, MIN_SLOT)
        boxes.append(FlowBox(x, y, BOX_WIDTH, height, y + slot / 2, link.label, link.count,
                             link.kind, ""))
        y += slot + GAP
    return boxes


def _ribbon(x0: float, y0: float, x1: float, y1: float, height0: float,
            height1: float) -> str:
    mid = (x0 + x1) / 2
    return (f"M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f} "
            f"L{x1:.1f},{y1 + height1:.1f} C{mid:.1f},{y1 + height1:.1f} {mid:.1f},"
            f"{y0 + height0:.1f} {x0:.1f},{y0 + height0:.1f} Z")


def layout_flow(flow: Flow, width: int = FLOW_WIDTH) -> FlowDiagram:
    """Place the three columns (came from, focus, went to) and the ribbons between them."""
    scale = FLOW_SCALE_HEIGHT / flow.total if flow.total else 0.0
    left_x, focus_x, right_x = width * 0.3, width * 0.5 - BOX_WIDTH / 2, width * 0.7 - BOX_WIDTH
    left = [replace(b, side="left") for b in _column(flow.came_from, left_x, scale)]
    right = [replace(b, side="right") for b in _column(flow.went_to, right_x, scale)]
    column_height = max([b.y + max(b.height, MIN_SLOT) for b in left + right] + [MIN_SLOT])
    focus_height = max(flow.total * scale, 2.0)
    focus_y = max((column_height - focus_height) / 2, 0.0)
    focus = FlowBox(focus_x, focus_y, BOX_WIDTH, focus_height, focus_y + focus_height / 2,
                    flow.focus, flow.total, "focus", "focus")
    ribbons: list[FlowRibbon] = []
    offset = focus_y
    for box in left:
        ribbons.append(FlowRibbon(_ribbon(box.x + BOX_WIDTH, box.y, focus_x, offset,
                                          box.height, box.height),
                                  box.kind, box.label, box.count))
        offset += box.height
    offset = focus_y
    for box in right:
        ribbons.append(FlowRibbon(_ribbon(focus_x + BOX_WIDTH, offset, box.x, box.y,
                                          box.height, box.height),
                                  box.kind, box.label, box.count))
        offset += box.height
    height = int(max(column_height, focus_y + focus_height)) + 4
    return FlowDiagram(width, height, tuple(left + [focus] + right), tuple(ribbons))


def journeys(steps: Iterable[tuple[Any, str]], max_steps: int = 5,
             limit: int = 10) -> list[tuple[tuple[str, ...], int]]:
    """The most frequent paths from entry to exit.

    `steps` are (visit key, page or section) in visit then time order. Consecutive repeats
    (reloads, moves within a section) count once; paths longer than `max_steps` end in "…".
    """
    counts: Counter[tuple[str, ...]] = Counter()
    current_key: Any = object()
    path: list[str] = []
    for key, label in steps:
        if key != current_key:
            if path:
                counts[journey_of(path, max_steps)] += 1
            current_key, path = key, []
        path.append(label)
    if path:
        counts[journey_of(path, max_steps)] += 1
    return top_journeys(counts, limit)


TRUNCATED = "…"


def journey_of(labels: Iterable[str], max_steps: int = 5) -> tuple[str, ...]:
    """One visit's journey as shown: consecutive repeats once, at most `max_steps` steps
    (then "…"), and the exit."""
    path: list[str] = []
    for label in labels:
        if not path or path[-1] != label:
            path.append(label)
    shown = path[:max_steps] + ([TRUNCATED] if len(path) > max_steps else [])
    return (*shown, EXIT)


def top_journeys(counts: Mapping[tuple[str, ...], int], limit: int
                 ) -> list[tuple[tuple[str, ...], int]]:
    """The most frequent journeys first, ties in path order."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
