"""Demo data (`flask demo-data`), the report timings command and the sections setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from tracker import create_app
from tracker.clock import utcnow
from tracker.domain.visits import SectionRule
from tracker.extensions import db
from tracker.models import BannerVersion, Consent, Page, Pageview, Visit
from tracker.services import demo_data, reports, runtime
from tracker.web.site import DEMO_PAGES


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_demo_data_goes_through_ingest_and_is_marked(app, dns_server):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo-data", "--days", "5", "--visits", "80", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "stored 80/80 visits" in result.output  # the progress line
    assert count(Visit) == 80
    assert count(Pageview) > 80
    # Every consent is a real proof pointing at the demo banner, which says what it is.
    banner = db.session.get(BannerVersion, demo_data.DEMO_BANNER_SHA256)
    assert "DEMO DATA" in banner.content
    assert db.session.scalar(select(func.count()).select_from(Consent).where(
        Consent.banner_sha256 != demo_data.DEMO_BANNER_SHA256)) == 0
    assert reports.has_demo_data()
    # Enriched by the real GeoIP readers, with reverse DNS from the demo table: the DNS
    # server (the configured resolver) was never asked.
    assert dns_server.queries == []
    organisations = {o for (o,) in db.session.execute(select(Visit.organization).distinct())}
    assert {"Free SAS", "France Telecom - Orange"} <= organisations
    names = {n for (n,) in db.session.execute(select(Visit.dns_name).distinct()) if n}
    assert any(n.endswith(".adsl.proxad.net") for n in names)
    # The demo site's own pages, and a real spread of browsers and devices.
    paths = {p for (p,) in db.session.execute(select(Page.path))}
    assert paths <= set(DEMO_PAGES) and len(paths) >= 6
    devices = {d for (d,) in db.session.execute(select(Visit.device).distinct())}
    assert {"desktop", "mobile"} <= devices
    # Visitors who never agreed to location have none.
    assert db.session.scalar(select(func.count()).select_from(Visit).join(
        Consent, Consent.id == Visit.consent_id).where(
        Consent.location.is_(False), Visit.country.is_not(None))) == 0

    again = runner.invoke(args=["demo-data", "--if-empty"])
    assert again.exit_code == 0 and "nothing added" in again.output
    assert count(Visit) == 80


def test_demo_pages_are_the_demo_sites(app):
    assert {path: title for path, (title, _) in DEMO_PAGES.items()} == demo_data.PAGES
    assert set(demo_data.NEXT) == set(demo_data.PAGES)
    for targets in demo_data.NEXT.values():
        assert set(targets) <= set(demo_data.PAGES) | {demo_data.EXIT}


def test_report_timings_command(app):
    demo_data.generate(runtime.ingest(), days=3, visits=30, now=utcnow(),
                       timezone="Europe/Paris")
    result = app.test_cli_runner().invoke(args=["report-timings", "--days", "3",
                                                "--repeat", "1"])
    assert result.exit_code == 0, result.output
    for name in reports.REPORTS:
        assert f"  {name} " in result.output


def test_sections_setting_reaches_ingest(tmp_path: Path):
    app = create_app({"TESTING": True, "SECRET_KEY": "x",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                      "TRACKER_SPOOL_DIR": str(tmp_path / "spool"),
                      "TRACKER_SECTIONS": "/projets/=Portfolio,re:^/journal/\\d+=Archives"})
    with app.app_context():
        assert runtime.ingest().section_rules == (
            SectionRule("/projets/", "Portfolio"), SectionRule("re:^/journal/\\d+", "Archives"))
    with pytest.raises(ValueError, match="section rule"):
        create_app({"TESTING": True, "SECRET_KEY": "x", "TRACKER_SPOOL_DIR": str(tmp_path),
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'y.sqlite3'}",
                    "TRACKER_SECTIONS": "projets=Portfolio"})
