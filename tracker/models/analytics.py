"""Consent proofs and the visits they allow us to record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db

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
    first_served_at: Mapped[datetime] = mapped_column(DateTime)


class Consent(db.Model):
    """One decision taken in the banner: the proof of consent (or of refusal)."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Only kept when analytics is granted; refusals identify nobody.
    visitor_id: Mapped[str | None] = mapped_column(String(32), index=True, info=COOKIE_ID)
    analytics: Mapped[bool] = mapped_column(Boolean)
    location: Mapped[bool] = mapped_column(Boolean)
    marketing: Mapped[bool] = mapped_column(Boolean)
    method: Mapped[str] = mapped_column(String(16))
    policy_version: Mapped[str] = mapped_column(String(32))
    lang: Mapped[str] = mapped_column(String(2))
    banner_sha256: Mapped[str] = mapped_column(ForeignKey("banner_versions.sha256"))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime)


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
    __table_args__ = (Index("ix_visits_visitor_last_seen", "visitor_id", "last_seen_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visitor_id: Mapped[str] = mapped_column(String(32), info=COOKIE_ID)
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"))
    started_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    entry_page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    exit_page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    pageviews: Mapped[int] = mapped_column(Integer, default=0)
    engaged_ms: Mapped[int] = mapped_column(Integer, default=0)
    ip: Mapped[str | None] = mapped_column(String(45), info=IP)
    dns_name: Mapped[str | None] = mapped_column(String(253), info=DNS_NAME)
    asn: Mapped[int | None] = mapped_column(Integer)
    organization: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2), info=LOCATION)
    city: Mapped[str | None] = mapped_column(String(100), info=LOCATION)
    browser: Mapped[str] = mapped_column(String(50), info=BROWSER)
    browser_version: Mapped[str] = mapped_column(String(20), info=BROWSER)
    os: Mapped[str] = mapped_column(String(50), info=BROWSER)
    device: Mapped[str] = mapped_column(String(10), info=BROWSER)
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    referrer_domain: Mapped[str | None] = mapped_column(String(253))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))


class Pageview(db.Model):
    """One page load within a visit; engagement beacons raise its engaged time."""

    __tablename__ = "pageviews"
    __table_args__ = (Index("ix_pageviews_ts_page", "ts", "page_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The beacon's own id: a redelivered or replayed beacon is stored once.
    event_id: Mapped[str] = mapped_column(String(32), unique=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id"))
    prev_page_id: Mapped[int | None] = mapped_column(ForeignKey("pages.id"))
    ts: Mapped[datetime] = mapped_column(DateTime)
    engaged_ms: Mapped[int] = mapped_column(Integer, default=0)
