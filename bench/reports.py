"""Reports over 1M and 10M pageviews (quick: 100k) on SQLite and PostgreSQL, against DuckDB
running the equivalent GROUP BYs over the same raw rows exported to Parquet.

One seeded event set per size is written once as CSV (400 days of visits, pageviews, pages,
consents, in the tables' exact columns), bulk-loaded into each engine (executemany on
SQLite, COPY on PostgreSQL: not through HTTP, so loading takes seconds, not hours) and
converted to Parquet by DuckDB. Each report (overview, sections, pages, flows, duration,
sources) is timed for the last 30 days and the last 12 months, as the dashboard asks
(`source="auto"`: rollups when the range is large, raw rows when it is small), median of a
few runs after a warm-up; the rollups are refreshed once after loading (timed too).
The figure is our time / DuckDB's time (goal <= 1 at 10M), and how each grows from the
smallest size to the largest (goal < 2x from 1M to 10M).
"""

from __future__ import annotations

import csv
import math
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from bench.harness import Figure

TZ = "Europe/Paris"
NOW = datetime(2026, 3, 31, 10, 0)
DAYS = 400
REPORTS = ("overview", "sections", "pages", "flows", "duration", "sources")
RANGES = ("30d", "12mo")
SEED = 6
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 6, 10, 14, 15, 14, 10, 11, 14, 15, 14, 12, 10, 9, 9, 7, 4,
                2)


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    engines: tuple[str, ...]
    repeat: int
    raw_up_to: int  # also time the raw reports (no rollups) up to this size, for context

    @classmethod
    def make(cls, quick: bool, engine: str | None = None,
             sizes: tuple[int, ...] = ()) -> Options:
        engines = (engine,) if engine else ("sqlite", "postgresql")
        if quick:
            return cls(sizes or (100_000,), engines, 3, 100_000)
        return cls(sizes or (1_000_000, 10_000_000), engines, 3, 1_000_000)


# -- the event set ----------------------------------------------------------------------

SECTIONS = {"projets": 14, "journal": 24, "studio": 4, "services": 6, "contact": 1,
            "equipe": 5, "presse": 6}
ORIGINS = (  # weight, referrer domain, utm source, utm medium, utm campaign
    (38, None, None, None, None),
    (20, "www.google.fr", None, None, None), (6, "www.google.com", None, None, None),
    (3, "www.bing.com", None, None, None), (2, "duckduckgo.com", None, None, None),
    (2, "www.qwant.com", None, None, None),
    (5, "www.linkedin.com", None, None, None), (3, "www.instagram.com", None, None, None),
    (2, "t.co", None, None, None),
    (6, None, "newsletter", "email", "CAMPAIGN"),
    (2, "www.facebook.com", "facebook", "paid_social", "printemps"),
    (1, None, "linkedin", "social", "portfolio"),
    (10, "LONGTAIL", None, None, None),
)
BROWSERS = (  # weight, browser, version, os, device
    (30, "Chrome", "131", "Windows", "desktop"), (14, "Chrome", "131", "Mac OS X", "desktop"),
    (12, "Safari", "18.1", "Mac OS X", "desktop"), (16, "Mobile Safari", "18.1", "iOS", "mobile"),
    (10, "Chrome Mobile", "131", "Android", "mobile"), (8, "Firefox", "132", "Windows", "desktop"),
    (3, "Firefox", "128", "Linux", "desktop"), (5, "Edge", "131", "Windows", "desktop"),
    (2, "Samsung Internet", "26", "Android", "mobile"), (3, "Mobile Safari", "17.7", "iOS",
                                                        "tablet"),
)
PLACES = ((40, None, None), (30, "FR", "Paris"), (10, "FR", "Lyon"), (6, "GB", "London"),
          (5, "SE", "Linköping"), (5, "DE", "Berlin"), (4, "US", "Milton"))
# weight, ASN, organisation, IPv4 first octet, reverse-DNS name pattern ({} the address
# with dashes, {h} in hex), IPv6 prefix. About a third of visits come over IPv6 (no name).
NETWORKS = (
    (30, 3215, "Orange", 90, "a{}.w90-{h}.abo.wanadoo.fr", "2a01:cb00"),
    (20, 12322, "Free SAS", 82, "mar75-1-{}.fbx.proxad.net", "2a01:e0a"),
    (12, 15557, "Societe Francaise Du Radiotelephone - SFR SA", 109, "{}.rev.sfr.net",
     "2a02:8428"),
    (10, 5410, "Bouygues Telecom SA", 176, "{}.abo.bbox.fr", "2001:861"),
    (8, 3320, "Deutsche Telekom AG", 91, "p{h}.dip0.t-ipconnect.de", "2003:e5"),
    (5, 29447, "Iliad Italia S.p.A.", 151, "", "2a0d:5600"),
    (15, 16276, "OVH SAS", 51, "ip{}.ip-51-38-1.eu", "2001:41d0"),
)


NETWORK_WEIGHTS = [n[0] for n in NETWORKS]


def _network(rng: random.Random) -> tuple[str, str, int, str]:
    """(IP address, reverse-DNS name or "", ASN, organisation) of one visit."""
    _, asn, organisation, octet, name, prefix = rng.choices(NETWORKS, NETWORK_WEIGHTS)[0]
    if rng.random() < 0.35:
        groups = ":".join(f"{rng.getrandbits(16):x}" for _ in range(6))
        return f"{prefix}:{groups}", "", asn, organisation
    rest = [rng.randrange(256) for _ in range(3)]
    ip = f"{octet}.{rest[0]}.{rest[1]}.{rest[2]}"
    dashed, hexed = ip.replace(".", "-"), "".join(f"{b:02x}" for b in (octet, *rest))
    return ip, name.format(dashed, h=hexed) if name else "", asn, organisation


def _pages() -> list[tuple[int, str, str, str, float]]:
    """(id, path, section, title, weight) of the site."""
    pages = [(1, "/", "home", "Amniotic", 30.0)]
    for section, count in SECTIONS.items():
        pages.append((len(pages) + 1, f"/{section}/", section, section.title(), 8.0))
        for n in range(1, count):
            pages.append((len(pages) + 1, f"/{section}/{section[:4]}-{n:02d}/", section,
                          f"{section.title()} {n}", 8.0 / (n + 1)))
    return pages


def _ts(at: datetime) -> str:
    """A time in the CSV files (DuckDB reads it; `load` converts it as the tracker stores it)."""
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass
class EventSet:
    dir: Path
    pageviews: int = 0
    visits: int = 0
    visitors: int = 0
    seconds: float = 0.0
    tables: tuple[str, ...] = ("banner_versions", "pages", "consents", "visits", "pageviews")

    def csv(self, table: str) -> Path:
        return self.dir / f"{table}.csv"


def generate(size: int, directory: Path) -> EventSet:
    """Write about `size` pageviews (and their visits, consents, pages) as CSV, seeded."""
    began = time.monotonic()
    rng = random.Random(SEED)
    out = EventSet(directory)
    pages = _pages()
    page_ids = [p[0] for p in pages]
    page_weights = [p[4] for p in pages]
    origin_weights = [o[0] for o in ORIGINS]
    browser_weights = [b[0] for b in BROWSERS]
    place_weights = [p[0] for p in PLACES]
    first_day = NOW - timedelta(days=DAYS)
    day_weights = [(0.6 + 0.8 * d / DAYS) * (0.5 if (first_day + timedelta(days=d)).weekday()
                                              >= 5 else 1.0) for d in range(DAYS)]
    per_day = size / 2.45 / sum(day_weights)  # about 2.45 pageviews per visit
    banner = "0" * 64
    with open(out.csv("banner_versions"), "w", newline="") as f:
        csv.writer(f).writerow([banner, "bench", _ts(first_day)])
    with open(out.csv("pages"), "w", newline="") as f:
        csv.writer(f).writerows(p[:4] for p in pages)
    recent: list[tuple[str, str]] = []
    visit_id = pageview_id = 0
    with open(out.csv("consents"), "w", newline="") as cf, \
            open(out.csv("visits"), "w", newline="") as vf, \
            open(out.csv("pageviews"), "w", newline="") as pf:
        consents, visits, views = csv.writer(cf), csv.writer(vf), csv.writer(pf)
        for d in range(DAYS):
            day = first_day + timedelta(days=d)
            n = int(per_day * day_weights[d]) + (rng.random() < per_day * day_weights[d] % 1)
            starts = sorted(day + timedelta(hours=rng.choices(range(24), HOUR_WEIGHTS)[0],
                                            seconds=rng.random() * 3600) for _ in range(n))
            for start in starts:
                if start >= NOW - timedelta(minutes=30) or pageview_id >= size:
                    continue
                if recent and rng.random() < 0.3:
                    visitor, consent = recent[rng.randrange(len(recent))]
                else:
                    visitor, consent = f"{rng.getrandbits(128):032x}", \
                        f"{rng.getrandbits(128):032x}"
                    consents.writerow([consent, visitor, 1, 1, 0, "custom", "2026-11-01", "fr",
                                       banner, _ts(start - timedelta(seconds=5)),
                                       _ts(start + timedelta(days=390)), ""])
                    out.visitors += 1
                    recent.append((visitor, consent))
                    if len(recent) > 20_000:
                        recent = recent[10_000:]
                visit_id += 1
                bot = rng.random() < 0.02
                _, referrer, source, medium, campaign = rng.choices(ORIGINS, origin_weights)[0]
                if referrer == "LONGTAIL":
                    referrer = f"blog{int(rng.paretovariate(1.2)) % 500}.example.org"
                if campaign == "CAMPAIGN":
                    campaign = f"lettre-{start:%Y-%m}"
                _, browser, version, os_, device = rng.choices(BROWSERS, browser_weights)[0]
                _, country, city = rng.choices(PLACES, place_weights)[0]
                at, prev, engaged_total = start, None, 0
                page = rng.choices(page_ids, page_weights)[0]
                entry, count = page, 0
                while True:
                    pageview_id += 1
                    count += 1
                    engaged = 0 if rng.random() < 0.05 else \
                        min(int(rng.lognormvariate(9.6, 1.1)), 1_500_000)
                    views.writerow([pageview_id, f"{pageview_id:032x}", visit_id, page,
                                    prev if prev is not None else "", _ts(at), engaged])
                    engaged_total += engaged
                    last_at = at
                    if count >= 15 or rng.random() > (0.25 if bot else 0.6) \
                            or pageview_id >= size:
                        break
                    at = at + timedelta(milliseconds=engaged * rng.uniform(1.05, 1.4),
                                        seconds=rng.uniform(1, 40))
                    prev, page = page, rng.choices(page_ids, page_weights)[0]
                ip, dns_name, asn, organisation = _network(rng)
                visits.writerow([
                    visit_id, visitor, consent, _ts(start), _ts(last_at), entry, page, count,
                    engaged_total, ip, dns_name, asn, organisation, country or "", city or "",
                    "Googlebot" if bot else browser, "2.1" if bot else version,
                    "Other" if bot else os_, "bot" if bot else device, int(bot),
                    referrer or "", source or "", medium or "", campaign or ""])
        out.pageviews, out.visits = pageview_id, visit_id
    out.seconds = time.monotonic() - began
    return out


# -- loading ----------------------------------------------------------------------------


def _rows(path: Path) -> Iterator[list[str | None]]:
    with open(path, newline="") as f:
        for row in csv.reader(f):
            yield [v if v != "" else None for v in row]


def create_schema(url: str, workdir: Path) -> None:
    """The tables from the models (what the tests use; the migration builds the same)."""
    from tracker import create_app
    from tracker.extensions import db
    from tracker.services.partitions import Partitions

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "TRACKER_SPOOL_DIR": str(workdir / "spool")})
    with app.app_context():
        db.create_all()
        # Monthly partitions on PostgreSQL, as ingest creates them in production.
        months = {date(d.year, d.month, 1) for d in
                  (NOW - timedelta(days=n) for n in range(DAYS + 31))}
        Partitions().ensure(db.engine, sorted(months))
        db.engine.dispose()


# The columns of each CSV file, in the order `generate` writes them (not necessarily the
# tables' order: loading names them).
CSV_COLUMNS = {
    "banner_versions": ("sha256", "content", "first_served_at"),
    "pages": ("id", "path", "section", "title"),
    "consents": ("id", "visitor_id", "analytics", "location", "marketing", "method",
                 "policy_version", "lang", "banner_sha256", "created_at", "expires_at",
                 "withdrawn_at"),
    "visits": ("id", "visitor_id", "consent_id", "started_at", "last_seen_at", "entry_page_id",
               "exit_page_id", "pageviews", "engaged_ms", "ip", "dns_name", "asn",
               "organization", "country", "city", "browser", "browser_version", "os", "device",
               "is_bot", "referrer_domain", "utm_source", "utm_medium", "utm_campaign"),
    "pageviews": ("id", "event_id", "visit_id", "page_id", "prev_page_id", "ts", "engaged_ms"),
}


def _stored(table: str, rows: Iterator[list[str | None]], dialect: Any
            ) -> Iterator[list[Any]]:
    """CSV rows as the tracker stores them: ids and addresses as bytes, times as the engine
    keeps them."""
    from tracker.extensions import db
    from tracker.models.types import HexId, PackedIP, Timestamp

    converters: list[Callable[[str], Any] | None] = []
    for name in CSV_COLUMNS[table]:
        column = db.metadata.tables[table].c[name]
        bind = column.type.bind_processor(dialect) or (lambda v: v)
        if isinstance(column.type, Timestamp):
            converters.append(lambda v, bind=bind: bind(datetime.fromisoformat(v)))
        elif isinstance(column.type, HexId | PackedIP):
            converters.append(bind)
        else:
            converters.append(None)
    for row in rows:
        yield [v if convert is None or v is None else convert(v)
               for convert, v in zip(converters, row, strict=True)]


def load(url: str, events: EventSet, workdir: Path) -> float:
    """Bulk-load the event set; return the seconds it took."""
    began = time.monotonic()
    create_schema(url, workdir)
    dialect = create_engine(url).dialect
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        for table in events.tables:
            names, marks = ", ".join(CSV_COLUMNS[table]), ", ".join("?" * len(CSV_COLUMNS[table]))
            connection.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
                                   _stored(table, _rows(events.csv(table)), dialect))
            connection.commit()
        connection.execute("ANALYZE")
        connection.close()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as connection:
            with connection.cursor() as cursor:
                for table in events.tables:
                    names = ", ".join(CSV_COLUMNS[table])
                    with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                        for row in _stored(table, _rows(events.csv(table)), dialect):
                            copy.write_row(row)
            connection.commit()
            connection.autocommit = True
            connection.execute("VACUUM ANALYZE")
    return time.monotonic() - began


# -- DuckDB: the same figures over Parquet ------------------------------------------------


def to_parquet(events: EventSet) -> dict[str, Path]:
    import duckdb

    columns = {
        "pages": "{'id': 'INTEGER', 'path': 'VARCHAR', 'section': 'VARCHAR', "
                 "'title': 'VARCHAR'}",
        "visits": "{'id': 'INTEGER', 'visitor_id': 'VARCHAR', 'consent_id': 'VARCHAR', "
                  "'started_at': 'TIMESTAMP', 'last_seen_at': 'TIMESTAMP', "
                  "'entry_page_id': 'INTEGER', 'exit_page_id': 'INTEGER', "
                  "'pageviews': 'INTEGER', 'engaged_ms': 'INTEGER', 'ip': 'VARCHAR', "
                  "'dns_name': 'VARCHAR', 'asn': 'INTEGER', 'organization': 'VARCHAR', "
                  "'country': 'VARCHAR', 'city': 'VARCHAR', 'browser': 'VARCHAR', "
                  "'browser_version': 'VARCHAR', 'os': 'VARCHAR', 'device': 'VARCHAR', "
                  "'is_bot': 'BOOLEAN', 'referrer_domain': 'VARCHAR', 'utm_source': 'VARCHAR', "
                  "'utm_medium': 'VARCHAR', 'utm_campaign': 'VARCHAR'}",
        "pageviews": "{'id': 'INTEGER', 'event_id': 'VARCHAR', 'visit_id': 'INTEGER', "
                     "'page_id': 'INTEGER', 'prev_page_id': 'INTEGER', 'ts': 'TIMESTAMP', "
                     "'engaged_ms': 'INTEGER'}",
    }
    out = {}
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        for table, spec in columns.items():
            path = events.dir / f"{table}.parquet"
            con.execute(f"COPY (SELECT * FROM read_csv('{events.csv(table)}', header=false, "
                        f"columns={spec})) TO '{path}' (FORMAT parquet)")
            out[table] = path
    return out


def _bucket_sql(column: str, granularity: str, start: datetime, end: datetime) -> str:
    """The local bucket label of a UTC timestamp column, DST included (as reports do)."""
    from tracker.domain.reports import offset_segments, zone

    segments = offset_segments(zone(TZ), start, end)
    shift = str(segments[-1][1])
    if len(segments) > 1:
        cases = " ".join(f"WHEN {column} < TIMESTAMP '{until}' THEN {seconds}"
                         for until, seconds in segments[:-1])
        shift = f"CASE {cases} ELSE {shift} END"
    local = f"({column} + to_seconds({shift}))"
    if granularity == "week":
        return f"strftime(date_trunc('week', {local}), '%Y-%m-%d')"
    return f"strftime({local}, '{ {'day': '%Y-%m-%d', 'month': '%Y-%m'}[granularity] }')"


BUCKET_CASE = ("CASE WHEN {x} < 10000 THEN 0 WHEN {x} < 30000 THEN 1 WHEN {x} < 60000 THEN 2 "
               "WHEN {x} < 180000 THEN 3 WHEN {x} < 600000 THEN 4 WHEN {x} < 1800000 THEN 5 "
               "ELSE 6 END")


def duckdb_statements(name: str, s: datetime, e: datetime, ps: datetime, granularity: str,
                      limit: int = 50) -> list[str]:
    """The GROUP BYs that compute report `name` over [s, e) (previous period from ps)."""
    def lit(at: datetime) -> str:
        return f"TIMESTAMP '{at}'"

    def dur(lo: datetime, hi: datetime) -> str:
        return (f"dur AS (SELECT v.id, v.visitor_id, v.started_at, v.entry_page_id, "
                f"v.exit_page_id, v.pageviews, date_diff('millisecond', v.started_at, "
                f"v.last_seen_at) + coalesce(max(pv.engaged_ms), 0) AS ms FROM v LEFT JOIN pv "
                f"ON pv.visit_id = v.id AND pv.ts = v.last_seen_at AND pv.ts >= {lit(lo)} "
                f"WHERE v.started_at >= {lit(lo)} AND v.started_at < {lit(hi)} "
                f"AND NOT v.is_bot GROUP BY v.id, v.visitor_id, v.started_at, v.last_seen_at, "
                "v.entry_page_id, v.exit_page_id, v.pageviews)")

    def views(lo: datetime, hi: datetime) -> str:
        return (f"pv JOIN v ON v.id = pv.visit_id WHERE pv.ts >= {lit(lo)} AND pv.ts < {lit(hi)}"
                " AND NOT v.is_bot")

    def summary(lo: datetime, hi: datetime) -> list[str]:
        return [f"WITH {dur(lo, hi)} SELECT count(*), count(DISTINCT visitor_id), "
                "sum(pageviews), sum(CASE WHEN pageviews <= 1 THEN 1 ELSE 0 END), avg(ms) "
                "FROM dur",
                f"SELECT count(*), avg(pv.engaged_ms) FROM {views(lo, hi)}"]

    def journeys(label: str, n: int) -> str:
        return (f"WITH steps AS (SELECT pv.visit_id, pv.ts, pv.id, p.{label} AS label FROM pv "
                f"JOIN v ON v.id = pv.visit_id JOIN p ON p.id = pv.page_id WHERE NOT v.is_bot "
                f"AND v.started_at >= {lit(s)} AND v.started_at < {lit(e)} AND pv.ts >= "
                f"{lit(s - timedelta(days=1))}), marked AS (SELECT *, label IS DISTINCT FROM "
                "lag(label) OVER (PARTITION BY visit_id ORDER BY ts, id) AS fresh FROM steps), "
                "paths AS (SELECT visit_id, list(label ORDER BY ts, id) AS path FROM marked "
                "WHERE fresh GROUP BY visit_id) SELECT CASE WHEN len(path) > 5 THEN "
                "path[1:5] || ['…'] ELSE path END || ['(exit)'] AS journey, count(*) AS n "
                f"FROM paths GROUP BY journey ORDER BY n DESC, journey LIMIT {n}")

    sections = (f"SELECT p.section, count(*) AS n, count(DISTINCT v.visitor_id), "
                f"count(DISTINCT pv.visit_id), sum(pv.engaged_ms) FROM {views(s, e)}"
                .replace("WHERE", "JOIN p ON p.id = pv.page_id WHERE")
                + f" GROUP BY 1 ORDER BY n DESC, 1 LIMIT {limit}")
    entries = (f"SELECT p.section, count(*) FROM v JOIN p ON p.id = v.entry_page_id WHERE "
               f"v.started_at >= {lit(s)} AND v.started_at < {lit(e)} AND NOT v.is_bot "
               "GROUP BY 1")
    bounce = "sum(CASE WHEN pageviews <= 1 THEN 1 ELSE 0 END)"

    def groups(column: str) -> str:
        return (f"SELECT {column}, count(*) AS n, count(DISTINCT visitor_id), {bounce} FROM v "
                f"WHERE started_at >= {lit(s)} AND started_at < {lit(e)} AND NOT is_bot "
                f"GROUP BY ALL ORDER BY n DESC")

    if name == "overview":
        return [*summary(s, e), *summary(ps, s),
                f"WITH {dur(s, e)} SELECT {_bucket_sql('started_at', granularity, s, e)} AS b, "
                f"count(*), count(DISTINCT visitor_id), {bounce}, avg(ms) FROM dur GROUP BY b",
                f"SELECT {_bucket_sql('pv.ts', granularity, s, e)} AS b, count(*) "
                f"FROM {views(s, e)} GROUP BY b",
                sections.replace(f"LIMIT {limit}", "LIMIT 5"), entries,
                journeys("section", 5),
                f"WITH {dur(s, e)} SELECT {BUCKET_CASE.format(x='ms')} AS b, count(*) FROM dur "
                "GROUP BY b"]
    if name == "sections":
        return [sections, entries]
    if name == "pages":
        top = (f"SELECT p.path, p.title, count(*) AS n, count(DISTINCT v.visitor_id), "
               f"avg(pv.engaged_ms) FROM {views(s, e)}"
               .replace("WHERE", "JOIN p ON p.id = pv.page_id WHERE")
               + f" GROUP BY p.id, p.path, p.title ORDER BY n DESC, p.path LIMIT {limit}")
        return [top,
                f"WITH {dur(s, e)} SELECT p.path, count(*) AS n, count(DISTINCT visitor_id), "
                f"{bounce}, avg(ms) FROM dur JOIN p ON p.id = dur.entry_page_id GROUP BY 1 "
                f"ORDER BY n DESC, 1 LIMIT {limit}",
                f"WITH x AS (SELECT p.path, count(*) AS n FROM v JOIN p ON p.id = "
                f"v.exit_page_id WHERE v.started_at >= {lit(s)} AND v.started_at < {lit(e)} "
                f"AND NOT v.is_bot GROUP BY 1 ORDER BY n DESC, 1 LIMIT {limit}) "
                f"SELECT x.path, x.n, (SELECT count(*) FROM {views(s, e)} AND pv.page_id = "
                f"(SELECT id FROM p WHERE p.path = x.path)) FROM x"]
    if name == "flows":
        focus = (f"(SELECT p.id FROM {views(s, e)}"
                 .replace("WHERE", "JOIN p ON p.id = pv.page_id WHERE")
                 + " GROUP BY p.id, p.path ORDER BY count(*) DESC, p.path LIMIT 1)")
        return [f"SELECT count(*) FROM {views(s, e)} AND pv.page_id = {focus}",
                f"SELECT pv.prev_page_id, count(*) FROM {views(s, e)} AND pv.page_id = {focus}"
                " GROUP BY 1",
                f"SELECT pv.page_id, count(*) FROM {views(s, e)} AND pv.prev_page_id = {focus}"
                " GROUP BY 1",
                journeys("path", 20)]
    if name == "duration":
        return [f"WITH {dur(s, e)} SELECT p.section, {BUCKET_CASE.format(x='ms')} AS b, "
                "count(*) FROM dur JOIN p ON p.id = dur.entry_page_id GROUP BY 1, 2",
                f"SELECT p.section, {BUCKET_CASE.format(x='pv.engaged_ms')} AS b, count(*), "
                f"sum(pv.engaged_ms) FROM {views(s, e)}"
                .replace("WHERE", "JOIN p ON p.id = pv.page_id WHERE") + " GROUP BY 1, 2"]
    if name == "sources":
        return [groups("referrer_domain"),
                f"SELECT referrer_domain, utm_source, utm_medium, count(*) FROM v WHERE "
                f"started_at >= {lit(s)} AND started_at < {lit(e)} AND NOT is_bot GROUP BY ALL",
                groups("utm_campaign"), groups("utm_source"), groups("utm_medium")]
    raise ValueError(name)


def _median_seconds(action: Callable[[], Any], repeat: int) -> float:
    action()  # warm-up: caches, plans
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _period(name: str) -> Any:
    from tracker.domain.reports import local_date, preset_range, zone

    return preset_range(name, local_date(NOW, zone(TZ)))


def time_duckdb(files: dict[str, Path], repeat: int) -> dict[tuple[str, str], float]:
    import duckdb

    from tracker.domain.reports import auto_granularity, zone

    out = {}
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        for alias, table in (("p", "pages"), ("v", "visits"), ("pv", "pageviews")):
            con.execute(f"CREATE VIEW {alias} AS SELECT * FROM read_parquet('{files[table]}')")
        for range_name in RANGES:
            period = _period(range_name)
            s, e = period.utc_bounds(zone(TZ))
            ps, _ = period.previous().utc_bounds(zone(TZ))
            for report in REPORTS:
                statements = duckdb_statements(report, s, e, ps, auto_granularity(period))

                def run(statements: list[str] = statements) -> None:
                    for statement in statements:
                        con.execute(statement).fetchall()

                out[(range_name, report)] = _median_seconds(run, repeat)
    return out


# -- our side ---------------------------------------------------------------------------


@dataclass
class Ours:
    load_s: float = 0.0
    refresh_s: float = 0.0
    times: dict[tuple[str, str], float] = field(default_factory=dict)
    raw: dict[tuple[str, str], float] = field(default_factory=dict)
    used: dict[tuple[str, str], str] = field(default_factory=dict)
    report_bytes: int = 0
    total_bytes: int = 0
    per_table: dict[str, int] = field(default_factory=dict)


REPORT_TABLES = ("pages", "visits", "pageviews", "rollup_page_days", "rollup_visit_days",
                 "rollup_transition_days", "rollup_journey_days", "rollup_sketch_months",
                 "rollup_dirty", "rollup_state")


def time_ours(url: str, workdir: Path, repeat: int, with_raw: bool) -> Ours:
    from dataclasses import replace

    from bench.ingest import footprint
    from tracker import create_app
    from tracker.domain.reports import ReportQuery, auto_granularity
    from tracker.extensions import db
    from tracker.services import reports, rollups

    out = Ours()
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "TRACKER_SPOOL_DIR": str(workdir / "spool"), "TRACKER_TIMEZONE": TZ})
    with app.app_context():
        started = time.monotonic()
        result = rollups.refresh()
        out.refresh_s = time.monotonic() - started
        assert result.complete, result
        for range_name in RANGES:
            period = _period(range_name)
            query = ReportQuery(range=period, granularity=auto_granularity(period),
                                timezone=TZ, now=NOW)
            for report in REPORTS:
                out.times[(range_name, report)] = _median_seconds(
                    lambda q=query, r=report: reports.run(r, q), repeat)
                out.used[(range_name, report)] = "raw" if rollups.plan(query) is None \
                    else "rollups"
                if with_raw:
                    raw = replace(query, source="raw")
                    out.raw[(range_name, report)] = _median_seconds(
                        lambda q=raw, r=report: reports.run(r, q), 1)
        db.session.remove()
        db.engine.dispose()
    fp = footprint(url)
    out.total_bytes = fp.bytes
    out.per_table = fp.per_table
    out.report_bytes = sum(fp.per_table.get(t, 0) for t in REPORT_TABLES)
    if url.startswith("sqlite"):
        # The file holds every table; count the report tables' pages (dbstat) instead.
        out.report_bytes = sum(v for k, v in fp.per_table.items()
                               if k in REPORT_TABLES or k.startswith("ix_rollup"))
    return out


# -- the suite --------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def run(options: Options) -> list[Figure]:
    from bench.ingest import database

    figures: list[Figure] = []
    results: dict[tuple[str, int], Ours] = {}
    duck: dict[int, dict[tuple[str, str], float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        for size in options.sizes:
            data_dir = Path(tmp) / f"data-{size}"
            data_dir.mkdir()
            events = generate(size, data_dir)
            print(f"  {events.pageviews:,} pageviews, {events.visits:,} visits, "
                  f"{events.visitors:,} visitors over {DAYS} days generated in "
                  f"{events.seconds:.0f} s", flush=True)
            duck[size] = time_duckdb(to_parquet(events), options.repeat)
            for engine in options.engines:
                workdir = Path(tmp) / f"{engine}-{size}"
                workdir.mkdir()
                with database(engine, workdir) as url:
                    load_s = load(url, events, workdir)
                    ours = time_ours(url, workdir, options.repeat,
                                     with_raw=size <= options.raw_up_to)
                    ours.load_s = load_s
                results[(engine, size)] = ours
                print(f"  {engine} {size:,}: loaded in {load_s:.0f} s, rollups built in "
                      f"{ours.refresh_s:.0f} s", flush=True)
                figures += _size_figures(engine, size, events, ours, duck[size])
            for child in data_dir.glob("*.csv"):
                child.unlink()
    figures += _growth_figures(options, results, duck)
    return figures


def _size_figures(engine: str, size: int, events: EventSet, ours: Ours,
                  duck: dict[tuple[str, str], float]) -> list[Figure]:
    label = f"{size // 1000:,}k" if size < 1_000_000 else f"{size // 1_000_000}M"
    largest = size >= 10_000_000
    figures = []
    for range_name in RANGES:
        for report in REPORTS:
            key = (range_name, report)
            ratio = ours.times[key] / duck[key] if duck[key] else math.inf
            raw = f", raw {_ms(ours.raw[key])}" if key in ours.raw else ""
            figures.append(Figure(
                f"{engine} {label} {range_name} {report}", ratio,
                "<= 1.0 (at 10M)" if largest else "(context)",
                ratio <= 1.0 if largest else None,
                f"ours {_ms(ours.times[key])} ({ours.used[key]}{raw}), "
                f"DuckDB {_ms(duck[key])}"))
    per_view = ours.report_bytes / max(events.pageviews, 1)
    tables = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(
        ours.per_table.items(), key=lambda kv: -kv[1]) if k in REPORT_TABLES)
    figures.append(Figure(f"{engine} {label} bytes per pageview", per_view / 200,
                          "< 200 B", per_view < 200,
                          f"{per_view:.0f} B/pageview (report tables with rollups; the whole "
                          f"database {ours.total_bytes / 1e6:.0f} MB): {tables}"))
    figures.append(Figure(f"{engine} {label} load + rollups", None, "", None,
                          f"bulk load {ours.load_s:.0f} s, first rollup refresh "
                          f"{ours.refresh_s:.0f} s"))
    return figures


def _growth_figures(options: Options, results: dict[tuple[str, int], Ours],
                    duck: dict[int, dict[tuple[str, str], float]]) -> list[Figure]:
    if len(options.sizes) < 2:
        return []
    small, large = options.sizes[0], options.sizes[-1]
    figures = []
    for engine in options.engines:
        for range_name in RANGES:
            for report in REPORTS:
                key = (range_name, report)
                growth = results[(engine, large)].times[key] / results[(engine, small)].times[key]
                duck_growth = duck[large][key] / duck[small][key]
                figures.append(Figure(
                    f"{engine} growth {range_name} {report}", growth, "< 2x", growth < 2,
                    f"{_ms(results[(engine, small)].times[key])} -> "
                    f"{_ms(results[(engine, large)].times[key])} "
                    f"({small:,} -> {large:,} pageviews; DuckDB x{duck_growth:.1f})"))
    return figures

