"""The ingest path: consent check -> durable spool -> enrichment -> visits and pageviews.

`accept` runs on the request path and does only what must happen before answering: the
consent check and a durable append. Everything slow (reverse DNS, GeoIP, sessionization,
database writes) happens in `store`, called by the drainer off the request path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from tracker.clock import utcnow
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
from tracker.services import consent as consents
from tracker.services.consent import new_id
from tracker.services.spool import Spool

log = logging.getLogger("tracker.ingest")

# An engagement may reach us before its pageview was drained by another process.
ENGAGEMENT_WAIT = timedelta(minutes=10)


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
    _page_ids: dict[str, int] = field(default_factory=dict)

    # -- request path -------------------------------------------------------------------

    def accept(self, beacon: Beacon, *, ip: str | None, user_agent: str, now: datetime) -> str:
        """Check consent and spool the beacon durably; return its event id."""
        page = split_url(beacon.url)
        if page is None or page.origin not in self.site_origins:
            raise PayloadError("url", "is not on a site this collector serves")
        state = consents.lookup(beacon.consent_id)
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

    # -- off the request path -----------------------------------------------------------

    def drain(self) -> int:
        """Move every spooled event into the database; return how many were handled."""
        return self.spool.drain(self.store)

    def store(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store a batch in one transaction; return the engagements to retry later."""
        try:
            kept = _Batch(self, events).run()
            db.session.commit()
        except Exception:
            db.session.rollback()
            self.forget_pages()
            raise
        return kept


class _Batch:
    """One drain: consent is checked again, as an erasure or withdrawal may have happened."""

    def __init__(self, ingest: Ingest, events: list[dict[str, Any]]) -> None:
        self.ingest = ingest
        self.events = events
        self.consents: dict[str, ConsentState | None] = {}
        self.visits: dict[str, Visit] = {}
        self.dns: dict[str, str | None] = {}

    def run(self) -> list[dict[str, Any]]:
        allowed = [e for e in self.events if self._consented(e)]
        if len(allowed) < len(self.events):
            log.info("dropped %d spooled events whose consent ended before they were stored",
                     len(self.events) - len(allowed))
        ips = {e["ip"] for e in allowed if e["type"] == "pageview" and e.get("ip")}
        self.dns = self.ingest.rdns.lookup_many(ips) if ips else {}
        for event in allowed:
            if event["type"] == "pageview":
                self._pageview(event)
        # After the pageviews, so an engagement finds its pageview from the same batch.
        return [e for e in allowed if e["type"] == "engagement" and not self._engagement(e)]

    def _consented(self, event: dict[str, Any]) -> bool:
        consent_id = event.get("consent_id")
        if consent_id not in self.consents:
            self.consents[consent_id] = consents.lookup(consent_id)
        return permits(self.consents[consent_id], visitor_id=event.get("visitor_id"),
                       purpose="analytics", at=_time(event),
                       policy_version=self.ingest.policy_version)

    def _page_id(self, path: str, title: str) -> int:
        page_ids = self.ingest._page_ids
        if path not in page_ids:
            page = db.session.scalar(select(Page).filter_by(path=path))
            if page is None:
                page = Page(path=path, title=title[:300],
                            section=section_of(path, self.ingest.section_rules))
                db.session.add(page)
                db.session.flush()
            page_ids[path] = page.id
        return page_ids[path]

    def _open_visit(self, visitor_id: str, at: datetime) -> Visit | None:
        visit = self.visits.get(visitor_id)
        if visit is None:
            visit = db.session.scalar(
                select(Visit).filter_by(visitor_id=visitor_id)
                .order_by(Visit.last_seen_at.desc()).limit(1)
            )
        if visit is None or not continues_visit(visit.last_seen_at, at, self.ingest.visit_timeout):
            return None
        return visit

    def _pageview(self, event: dict[str, Any]) -> None:
        at = _time(event)
        page = split_url(event["url"])
        if page is None:  # checked on accept; a hand-edited spool is not worth a crash
            return
        page_id = self._page_id(page.path, event.get("title") or "")
        visit = self._open_visit(event["visitor_id"], at)
        new_visit = visit is None
        if visit is None:
            visit = self._new_visit(event, at, page_id, page.utm, page.origin)
        inserted = db.session.execute(
            _insert_ignoring_duplicates(Pageview).values(
                event_id=event["event_id"], visit_id=visit.id, page_id=page_id,
                prev_page_id=None if new_visit else visit.exit_page_id, ts=at, engaged_ms=0,
            ).returning(Pageview.id)
        ).first()
        if inserted is None:  # a redelivered beacon
            return
        visit.pageviews += 1
        if at >= visit.last_seen_at:
            visit.last_seen_at = at
            visit.exit_page_id = page_id

    def _new_visit(self, event: dict[str, Any], at: datetime, page_id: int,
                   utm: dict[str, str], origin: str) -> Visit:
        ip = event.get("ip")
        browser = parse_user_agent(event.get("user_agent") or "")
        state = self.consents[event["consent_id"]]
        network = self.ingest.geoip.network(ip) if ip else None
        location = None
        if ip and state is not None and state.choices.location:
            location = self.ingest.geoip.location(ip)
        visit = Visit(
            visitor_id=event["visitor_id"], consent_id=event["consent_id"],
            started_at=at, last_seen_at=at, entry_page_id=page_id, exit_page_id=page_id,
            pageviews=0, engaged_ms=0, ip=ip, dns_name=self.dns.get(ip) if ip else None,
            asn=network.asn if network else None,
            organization=network.organization if network else None,
            country=location.country if location else None,
            city=location.city if location else None,
            browser=browser.browser, browser_version=browser.browser_version, os=browser.os,
            device=browser.device, is_bot=browser.is_bot,
            referrer_domain=referrer_domain(event.get("referrer") or "", origin),
            utm_source=utm.get("utm_source"), utm_medium=utm.get("utm_medium"),
            utm_campaign=utm.get("utm_campaign"),
        )
        db.session.add(visit)
        db.session.flush()
        self.visits[event["visitor_id"]] = visit
        return visit

    def _engagement(self, event: dict[str, Any]) -> bool:
        """Raise the pageview's engaged time; False when the pageview is not stored yet."""
        pageview = db.session.scalar(select(Pageview).filter_by(event_id=event["pageview_id"]))
        if pageview is None:
            if datetime.fromisoformat(event["received_at"]) + ENGAGEMENT_WAIT > utcnow():
                return False
            log.warning("engagement for a pageview never stored; discarded after %s",
                        ENGAGEMENT_WAIT)
            return True
        visit = db.session.get(Visit, pageview.visit_id)
        if visit is None or visit.visitor_id != event["visitor_id"]:
            return True  # another visitor's pageview: a forged beacon changes nothing
        # Engagement is cumulative per page, so repeated beacons keep the largest value.
        gain = event["engaged_ms"] - pageview.engaged_ms
        if gain > 0:
            pageview.engaged_ms = event["engaged_ms"]
            visit.engaged_ms += gain
        return True


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["received_at"])


def _insert_ignoring_duplicates(model: type[db.Model]) -> Any:
    dialect = sqlite if db.engine.dialect.name == "sqlite" else postgresql
    return dialect.insert(model).on_conflict_do_nothing(index_elements=["event_id"])
