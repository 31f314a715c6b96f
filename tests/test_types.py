"""The compact column types give back exactly what was stored, and store it compactly."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text

from tracker.extensions import db
from tracker.models import BannerVersion, Consent

AT = datetime(2026, 3, 29, 0, 59, 59, 999_999)  # a DST night, to the microsecond
EARLY = datetime(1969, 12, 31, 23, 59, 59, 1)  # before the epoch: negative on SQLite


def _add_consent(banner_served_at: datetime) -> None:
    db.session.add(BannerVersion(sha256="0" * 64, content="", first_served_at=banner_served_at))
    db.session.add(Consent(
        id="0f" * 16, visitor_id="a0" * 16, analytics=True, location=False, marketing=False,
        method="custom", policy_version="1", lang="fr", banner_sha256="0" * 64, created_at=AT,
        expires_at=AT, withdrawn_at=None))


def test_timestamps_and_ids_round_trip_exactly(app):
    with app.app_context():
        _add_consent(banner_served_at=EARLY)
        db.session.commit()
        db.session.expunge_all()

        consent = db.session.scalars(select(Consent).where(Consent.visitor_id == "a0" * 16)).one()
        assert (consent.id, consent.created_at, consent.withdrawn_at) == ("0f" * 16, AT, None)
        assert db.session.scalar(select(BannerVersion.first_served_at)) == EARLY
        # Comparisons happen in the database, on the stored form.
        assert db.session.scalar(select(Consent.id).where(Consent.created_at > EARLY)) == "0f" * 16
        assert db.session.scalar(select(Consent.id).where(Consent.created_at > AT)) is None

        stored = db.session.execute(text(
            "SELECT id, created_at FROM consents")).one()
        assert bytes(stored.id) == bytes.fromhex("0f" * 16)  # 16 bytes, not 32 characters
        if db.engine.dialect.name == "sqlite":
            assert stored.created_at == 1_774_745_999_999_999  # microseconds, not text


def test_ip_addresses_are_stored_packed_and_read_back_canonical(app):
    from tracker.models import Page, Visit

    with app.app_context():
        _add_consent(banner_served_at=AT)
        db.session.add(Page(id=1, path="/", section="home"))
        for n, ip in enumerate(["89.160.20.112", "2001:db8::1", None], start=1):
            db.session.add(Visit(
                id=n, visitor_id="a0" * 16, consent_id="0f" * 16, started_at=AT,
                last_seen_at=AT, entry_page_id=1, exit_page_id=1, ip=ip, browser="", os="",
                browser_version="", device=""))
        db.session.commit()

        assert db.session.scalars(select(Visit.ip).order_by(Visit.id)).all() == [
            "89.160.20.112", "2001:db8::1", None]
        assert db.session.scalar(select(Visit.id).where(Visit.ip == "2001:db8::1")) == 2
        sizes = db.session.scalars(text("SELECT length(ip) FROM visits ORDER BY id")).all()
        assert sizes == [4, 16, None]
