"""The ingest path: consent check -> durable spool -> enrichment -> visits and pageviews.

`accept` runs on the request path and does only what must happen before answering: the
consent check (one prepared statement, no ORM) and a durable append. Everything slow (reverse
DNS, GeoIP, sessionization, database writes) happens in `store`, called by the drainer off
the request path, a batch at a time with a handful of statements per batch.

Several drainers may run at once (one per web process, or `flask ingest` on several hosts
writing to one PostgreSQL). A batch therefore locks the visitors it touches (PostgreSQL
advisory locks; on SQLite the batch's transaction takes the write lock before reading), and
a beacon's id is recorded in `seen_events` before its pageview is written, so a redelivered
or replayed beacon is stored, and counted in its visit, exactly once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from tracker.clock import utcnow
from tracker.domain import traffic_quality
from tracker.domain.consent import ConsentState, permits
from tracker.domain.payloads import Beacon, PayloadError
from tracker.domain.visits import (
    SectionRule,
    continues_visit,
    referrer_domain,
    section_of,
    split_url,
)
from tracker.enrich import GeoIP, ReverseDNS, parse_user_agent
from tracker.extensions import db
from tracker.models import Page, Pageview, Visit
from tracker.models.analytics import SeenEvent
from tracker.services import consent as consents
from tracker.services.consent import ConsentReader, ConsentStoreUnavailable, new_id
from tracker.services.partitions import Partitions, month_of
from tracker.services.spool import Spool

log = logging.getLogger("tracker.ingest")

__all__ = ["ConsentRequired", "ConsentStoreUnavailable", "Ingest"]

# An engagement may reach us before its pageview was drained by another process.
ENGAGEMENT_WAIT = timedelta(minutes=10)
# How long a stored beacon's id is remembered to refuse its duplicates: replays after a
# crash and client retries come within minutes; the margin covers a long outage. Purged by
# whole days, so an id is kept between 2 and 3 days.
DEDUPE_WINDOW = timedelta(days=2)
# Events per transaction: big enough to amortise round trips, small enough to keep locks short.
BATCH_SIZE = 2000
EPOCH = datetime(1970, 1, 1)


class ConsentRequired(Exception):
    """The beacon has no live analytics consent: nothing about it may be recorded."""


@dataclass
class Ingest:
    spool: Spool
    geoip: GeoIP
    rdns: ReverseDNS
    site_origins: Sequence[str]
    policy_version: str
    visit_timeout: timedelta = timedelta(minutes=30)
    section_rules: Sequence[SectionRule] = ()
    spam_referrers: frozenset[str] = traffic_quality.SPAM_REFERRERS
    consents: ConsentReader | None = None
    _page_ids: dict[str, int] = field(default_factory=dict)
    _partitions: Partitions = field(default_factory=Partitions)
    _purged_on: int | None = None  # the day of the last purge of seen_events

    # -- request path -------------------------------------------------------------------

    def accept(self, beacon: Beacon, *, ip: str | None, user_agent: str, now: datetime) -> str:
        """Check consent and spool the beacon durably; return its event id.

        Raises ConsentRequired (nothing is written) or ConsentStoreUnavailable (the database
        is down: nothing is written, the client may retry).
        """
        page = split_url(beacon.url)
        if page is None or page.origin not in self.site_origins:
            raise PayloadError("url", "is not on a site this collector serves")
        reader = self.consents
        if reader is None:  # an Ingest built without a reader (scripts): use the session
            state = consents.lookup(beacon.consent_id)
        else:
            state = reader.lookup(beacon.consent_id)
        if not permits(state, visitor_id=beacon.visitor_id, purpose="analytics", at=now,
                       policy_version=self.policy_version):
            raise ConsentRequired("no live analytics consent for this visitor")
        event_id = beacon.event_id or new_id()
        self.spool.append({
            "type": beacon.type,
            "event_id": event_id,
            "visitor_id": beacon.visitor_id,
            "consent_id": beacon.consent_id,
            "url": beacon.url,
            "referrer": beacon.referrer,
            "title": beacon.title,
            "pageview_id": beacon.pageview_id,
            "engaged_ms": beacon.engaged_ms,
            "ip": ip,
            "user_agent": user_agent[:512],
            "received_at": now.isoformat(),
        })
        return event_id

    def forget_pages(self) -> None:
        """Drop the cached page ids, after pages were deleted outside the ingest path."""
        self._page_ids.clear()
        self._partitions.forget()

    # -- off the request path -----------------------------------------------------------

    def drain(self) -> int:
        """Move every spooled event into the database; return how many were handled."""
        handled = self.spool.drain(self.store)
        while self.spool.backlog:  # the last drain stopped at its size budget
            handled += self.spool.drain(self.store)
        return handled

    def store(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store events, a transaction per batch; return the engagements to retry later.

        A failure leaves the events in the spool; batches committed before it are refused
        as duplicates when the spool is drained again.
        """
        kept: list[dict[str, Any]] = []
        for start in range(0, len(events), BATCH_SIZE):
            batch = events[start:start + BATCH_SIZE]
            try:
                kept += self._store_batch(batch)
            except Exception as exc:
                if is_transient(exc) or isinstance(exc, ProgrammingError):
                    raise  # the database is away, or the schema is wrong: retry it all later
                kept += self._isolate(batch, exc)
        self._purge_seen_events()
        return kept

    def _isolate(self, batch: list[dict[str, Any]], exc: Exception) -> list[dict[str, Any]]:
        """A batch failed for a reason of its own: halve it until each event that cannot be
        stored stands alone, and quarantine those, so that one bad event never blocks the
        spool for everyone. If no event at all can be stored, the fault is not in the events:
        raise, and they stay in the spool."""
        failed: list[tuple[dict[str, Any], Exception]] = []
        kept = self._bisect(batch, exc, failed)
        if len(failed) == len(batch):
            raise exc
        for event, error in failed:
            self.spool.quarantine([event])
            # Class names only: a database error's text may quote the row's values.
            log.error("event %s could not be stored (%s); quarantined in %s",
                      event.get("event_id"), describe(error), self.spool.quarantine_dir)
        return kept

    def _bisect(self, events: list[dict[str, Any]], exc: Exception,
                failed: list[tuple[dict[str, Any], Exception]]) -> list[dict[str, Any]]:
        if len(events) == 1:
            failed.append((events[0], exc))
            return []
        kept: list[dict[str, Any]] = []
        middle = len(events) // 2
        for half in (events[:middle], events[middle:]):  # halves keep the events' order
            try:
                kept += self._store_batch(half)
            except Exception as error:
                if is_transient(error):
                    raise
                kept += self._bisect(half, error, failed)
        return kept

    def _store_batch(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        views = [e for e in events if e["type"] == "pageview"]
        self._partitions.ensure(db.engine, {month_of(_time(e)) for e in views})
        self._ensure_pages(views)
        try:
            connection = db.session.connection()
            kept = _Batch(self, connection, events).run()
            db.session.commit()
        except Exception:
            db.session.rollback()
            self._page_ids.clear()
            raise
        return kept

    def _ensure_pages(self, views: list[dict[str, Any]]) -> None:
        """Give every path of the batch a page id, committing new pages on their own."""
        missing: dict[str, str] = {}
        for event in views:
            page = _split(event["url"])
            if page is not None and page.path not in self._page_ids:
                missing.setdefault(page.path, (event.get("title") or "")[:300])
        if not missing:
            return
        # Pages are no personal data and only ever added: commit them at once, so the
        # batch's own transaction stays short. Sorted, so concurrent drainers never deadlock.
        rows = [_fit(Page, {"path": path, "title": title,
                            "section": section_of(path, self.section_rules)})
                for path, title in sorted(missing.items())]
        with db.engine.begin() as connection:
            connection.execute(_insert_ignoring(Page, ["path"]), rows)
            for start in range(0, len(rows), consents.IN_CHUNK):
                paths = [r["path"] for r in rows[start:start + consents.IN_CHUNK]]
                self._page_ids.update(connection.execute(
                    select(Page.path, Page.id).where(Page.path.in_(paths))).all())

    def _purge_seen_events(self) -> None:
        """Once a day per process: ids are kept by whole days, so more often finds nothing
        (and each purge reads the whole table, which has no index on the day)."""
        now = utcnow()
        if self._purged_on == _day(now):
            return
        self._purged_on = _day(now)
        with db.engine.begin() as connection:
            gone = connection.execute(delete(SeenEvent).where(
                SeenEvent.stored_day < _day(now - DEDUPE_WINDOW))).rowcount
        if gone:
            log.info("forgot %d event ids older than %s", gone, DEDUPE_WINDOW)
        self.spool.expire_quarantine()


@dataclass
class _OpenVisit:
    """A visit as the batch sees it: a stored one (id known) or one it is creating."""

    id: int | None
    last_seen_at: datetime
    exit_page_id: int
    row: dict[str, Any] | None = None  # the new visit's columns, inserted at the end
    added_views: int = 0


class _Batch:
    """One transaction: consent is checked again, as an erasure or withdrawal may have happened."""

    def __init__(self, ingest: Ingest, connection: Connection,
                 events: list[dict[str, Any]]) -> None:
        self.ingest = ingest
        self.connection = connection
        self.events = events
        self.postgres = connection.dialect.name == "postgresql"
        self.consents: dict[str, ConsentState] = {}
        self.now = utcnow()

    def run(self) -> list[dict[str, Any]]:
        self._begin()
        ids = {e["consent_id"] for e in self.events if e.get("consent_id")}
        self.consents = consents.states(self.connection, ids)
        allowed = [e for e in self.events if self._consented(e)]
        if len(allowed) < len(self.events):
            log.info("dropped %d spooled events whose consent ended before they were stored",
                     len(self.events) - len(allowed))
        self._lock_visitors({e["visitor_id"] for e in allowed})
        self._pageviews(self._first_sightings([e for e in allowed if e["type"] == "pageview"]))
        # After the pageviews, so an engagement finds its pageview from the same batch.
        return self._engagements([e for e in allowed if e["type"] == "engagement"])

    # -- concurrency ------------------------------------------------------------------

    def _begin(self) -> None:
        """On SQLite, take the write lock before reading, so two drainers never interleave."""
        if self.connection.dialect.name != "sqlite":
            return
        raw = self.connection.connection.dbapi_connection
        if raw is not None and not raw.in_transaction:
            self.connection.exec_driver_sql("BEGIN IMMEDIATE")

    def _lock_visitors(self, visitor_ids: Iterable[str]) -> None:
        """PostgreSQL: hold each visitor's advisory lock until commit, taken in one order."""
        if not self.postgres:
            return
        keys = sorted({int(v[:15], 16) for v in visitor_ids})  # visitor ids are random hex
        if keys:
            self.connection.execute(
                text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(:keys) AS k"),
                {"keys": keys})

    def _first_sightings(self, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The pageviews never stored before: their ids are recorded in seen_events now."""
        unique: dict[str, dict[str, Any]] = {}
        for event in views:
            unique.setdefault(event["event_id"], event)
        if not unique:
            return []
        fresh: set[str] = set()
        ids = sorted(unique)
        today = _day(self.now)
        statement = _insert_ignoring(SeenEvent, ["event_id"]).returning(SeenEvent.event_id)
        for start in range(0, len(ids), consents.IN_CHUNK):
            rows = [{"event_id": bytes.fromhex(i), "stored_day": today}
                    for i in ids[start:start + consents.IN_CHUNK]]
            fresh.update(raw.hex() for raw in self.connection.execute(statement, rows).scalars())
        return [e for e in unique.values() if e["event_id"] in fresh]

    def _consented(self, event: dict[str, Any]) -> bool:
        return permits(self.consents.get(event.get("consent_id") or ""),
                       visitor_id=event.get("visitor_id"), purpose="analytics",
                       at=_time(event), policy_version=self.ingest.policy_version)

    # -- pageviews and visits ---------------------------------------------------------

    def _open_visits(self, visitor_ids: set[str]) -> dict[str, _OpenVisit]:
        """Each visitor's latest visit (whether it continues is decided per event)."""
        latest: dict[str, _OpenVisit] = {}
        ids = sorted(visitor_ids)
        newest = (select(Visit.visitor_id, func.max(Visit.last_seen_at).label("last"))
                  .group_by(Visit.visitor_id))
        for start in range(0, len(ids), consents.IN_CHUNK):
            chunk = newest.where(Visit.visitor_id.in_(ids[start:start + consents.IN_CHUNK]))
            sub = chunk.subquery()
            rows = self.connection.execute(
                select(Visit.visitor_id, Visit.id, Visit.last_seen_at, Visit.exit_page_id)
                .join(sub, (sub.c.visitor_id == Visit.visitor_id)
                      & (sub.c.last == Visit.last_seen_at)))
            for visitor_id, visit_id, last_seen_at, exit_page_id in rows:
                current = latest.get(visitor_id)
                if current is None or (current.id or 0) < visit_id:
                    latest[visitor_id] = _OpenVisit(visit_id, last_seen_at, exit_page_id)
        return latest

    def _pageviews(self, views: list[dict[str, Any]]) -> None:
        if not views:
            return
        visits = self._open_visits({e["visitor_id"] for e in views})
        page_ids = self.ingest._page_ids
        timeout = self.ingest.visit_timeout
        created: list[_OpenVisit] = []
        rows: list[tuple[_OpenVisit, dict[str, Any]]] = []
        for event in views:  # in order of arrival
            at = _time(event)
            page = _split(event["url"])
            if page is None or page.path not in page_ids:  # checked on accept
                continue
            page_id = page_ids[page.path]
            visit = visits.get(event["visitor_id"])
            previous: int | None = None
            if visit is None or not continues_visit(visit.last_seen_at, at, timeout):
                visit = _OpenVisit(None, at, page_id,
                                   row=self._new_visit(event, at, page_id, page.utm, page.origin))
                visits[event["visitor_id"]] = visit
                created.append(visit)
            else:
                previous = visit.exit_page_id
            visit.added_views += 1
            if at >= visit.last_seen_at:
                visit.last_seen_at, visit.exit_page_id = at, page_id
            rows.append((visit, {"event_id": event["event_id"], "page_id": page_id,
                                 "prev_page_id": previous, "ts": at, "engaged_ms": 0}))
        self._insert_visits(created)
        self.connection.execute(insert(Pageview), [{**row, "visit_id": visit.id}
                                                   for visit, row in rows])
        changed = [{"v_id": v.id, "v_added": v.added_views, "v_last": v.last_seen_at,
                    "v_exit": v.exit_page_id}
                   for v in {id(v): v for v, _ in rows}.values() if v.row is None]
        if changed:  # the visitors are locked: their visits changed only here
            self.connection.execute(
                update(Visit).where(Visit.id == bindparam("v_id")).values(
                    pageviews=Visit.pageviews + bindparam("v_added"),
                    last_seen_at=bindparam("v_last"), exit_page_id=bindparam("v_exit")),
                changed)

    def _insert_visits(self, created: list[_OpenVisit]) -> None:
        if not created:
            return
        ips = {v.row["ip"] for v in created if v.row and v.row["ip"]}
        names = self.ingest.rdns.lookup_many(ips) if ips else {}
        rows = []
        for visit in created:
            row = visit.row or {}
            row.update(dns_name=names.get(row["ip"]) if row["ip"] else None,
                       pageviews=visit.added_views, last_seen_at=visit.last_seen_at,
                       exit_page_id=visit.exit_page_id)
            rows.append(_fit(Visit, row))
        ids = self.connection.execute(
            insert(Visit).returning(Visit.id, sort_by_parameter_order=True), rows).scalars()
        for visit, visit_id in zip(created, ids, strict=True):
            visit.id = visit_id

    def _new_visit(self, event: dict[str, Any], at: datetime, page_id: int,
                   utm: dict[str, str], origin: str) -> dict[str, Any]:
        ip = event.get("ip")
        browser = parse_user_agent(event.get("user_agent") or "")
        state = self.consents[event["consent_id"]]
        geoip = self.ingest.geoip
        network = geoip.network(ip) if ip else None
        location = geoip.location(ip) if ip and state.choices.location else None
        referrer = referrer_domain(event.get("referrer") or "", origin)
        # Spam referrers and automation are kept (nothing acknowledged is dropped) but
        # flagged like bots, so no report counts them.
        is_bot = traffic_quality.is_bot_visit(
            user_agent=event.get("user_agent") or "", parsed_as_bot=browser.is_bot,
            referrer_host=referrer, spam=self.ingest.spam_referrers)
        return {
            "visitor_id": event["visitor_id"], "consent_id": event["consent_id"],
            "started_at": at, "last_seen_at": at, "entry_page_id": page_id,
            "exit_page_id": page_id, "pageviews": 0, "engaged_ms": 0, "ip": ip,
            "dns_name": None,
            "asn": network.asn if network else None,
            "organization": network.organization if network else None,
            "country": location.country if location else None,
            "city": location.city if location else None,
            "browser": browser.browser, "browser_version": browser.browser_version,
            "os": browser.os, "device": browser.device, "is_bot": is_bot,
            "referrer_domain": referrer,
            "utm_source": utm.get("utm_source"), "utm_medium": utm.get("utm_medium"),
            "utm_campaign": utm.get("utm_campaign"),
        }

    # -- engagement -------------------------------------------------------------------

    def _engagements(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Raise pageviews' engaged time; return the engagements still awaiting their pageview."""
        if not events:
            return []
        found = dict(self._engaged_pageviews(events))
        kept, pageview_updates, visit_gains = [], {}, {}
        for event in events:
            pageview = found.get(event["pageview_id"])
            if pageview is None:
                if _time(event) + ENGAGEMENT_WAIT > self.now:
                    kept.append(event)
                else:
                    log.warning("engagement for a pageview never stored; discarded after %s",
                                ENGAGEMENT_WAIT)
                continue
            if pageview["visitor_id"] != event["visitor_id"]:
                continue  # another visitor's pageview: a forged beacon changes nothing
            # Engagement is cumulative per page, so repeated beacons keep the largest value.
            gain = event["engaged_ms"] - pageview["engaged_ms"]
            if gain > 0:
                pageview["engaged_ms"] = event["engaged_ms"]
                pageview_updates[pageview["id"]] = pageview
                visit_gains[pageview["visit_id"]] = visit_gains.get(pageview["visit_id"], 0) + gain
        if pageview_updates:
            self.connection.execute(
                # By visit and time, not by id alone: pageviews have no index on their id
                # on PostgreSQL, and `ts` picks the partition.
                update(Pageview).where(Pageview.visit_id == bindparam("p_visit"),
                                       Pageview.ts == bindparam("p_ts"),
                                       Pageview.id == bindparam("p_id"))
                .values(engaged_ms=bindparam("p_ms")),
                [{"p_visit": p["visit_id"], "p_ts": p["ts"], "p_id": p["id"],
                  "p_ms": p["engaged_ms"]} for p in pageview_updates.values()])
            self.connection.execute(
                update(Visit).where(Visit.id == bindparam("v_id"))
                .values(engaged_ms=Visit.engaged_ms + bindparam("v_gain")),
                [{"v_id": k, "v_gain": v} for k, v in visit_gains.items()])
        return kept

    def _engaged_pageviews(self, events: list[dict[str, Any]],
                           ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The stored pageviews the engagements point at, found through their visitors'
        visits (pageviews need no index on their event id)."""
        wanted = sorted({e["pageview_id"] for e in events})
        visitors = sorted({e["visitor_id"] for e in events})
        for start in range(0, len(wanted), consents.IN_CHUNK):
            rows = self.connection.execute(
                select(Pageview.event_id, Pageview.id, Pageview.ts, Pageview.engaged_ms,
                       Pageview.visit_id, Visit.visitor_id)
                .join(Visit, Visit.id == Pageview.visit_id)
                .where(Visit.visitor_id.in_(visitors),
                       Pageview.event_id.in_(wanted[start:start + consents.IN_CHUNK])))
            for event_id, *rest in rows:
                yield event_id, dict(zip(("id", "ts", "engaged_ms", "visit_id", "visitor_id"),
                                         rest, strict=True))


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["received_at"])


# A site has few distinct URLs; a drain splits each event's URL twice (pages, then visits).
_split = functools.lru_cache(maxsize=4096)(split_url)


def _day(at: datetime) -> int:
    """Days since 1970-01-01 (at is naive UTC)."""
    return (at - EPOCH).days


def is_transient(exc: BaseException) -> bool:
    """Whether a failure says the database is unreachable or busy (retry the same events)
    rather than something about the events themselves."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError
                      | PoolTimeoutError)


def describe(exc: BaseException) -> str:
    """An exception for the log without what it may quote (SQL parameters: personal data)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        first_line = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        return f"{exc.__class__.__name__}: {exc.orig.__class__.__name__}: {first_line}"
    return exc.__class__.__name__


@functools.cache
def _string_columns(model: type[db.Model]) -> dict[str, int | None]:
    return {column.name: getattr(column.type, "length", None)
            for column in model.__table__.columns if isinstance(column.type, String)}


def _fit(model: type[db.Model], row: dict[str, Any]) -> dict[str, Any]:
    """Make a row's strings storable whatever the beacon carried: within their column's
    length, no NUL (PostgreSQL refuses it), no lone surrogate (not encodable in UTF-8)."""
    for name, length in _string_columns(model).items():
        value = row.get(name)
        if isinstance(value, str):
            if "\x00" in value:
                value = value.replace("\x00", "")
            try:
                value.encode()
            except UnicodeEncodeError:
                value = value.encode(errors="replace").decode()
            row[name] = value[:length] if length else value
    return row


def _insert_ignoring(model: type[db.Model], keys: list[str]) -> Any:
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(model).on_conflict_do_nothing(index_elements=keys)
