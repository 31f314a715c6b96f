"""The consent-gated collector, end to end through the HTTP API and the spool."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tests.helpers import FIREFOX, KNOWN_IP, SITE, beacon, decide, hex32
from tracker.extensions import db
from tracker.models import BannerVersion, Consent, Page, Pageview, Visit
from tracker.services import runtime


def drain() -> int:
    return runtime.ingest().drain()


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def spooled_text(app) -> str:
    return "".join(p.read_text() for p in Path(app.config["TRACKER_SPOOL_DIR"]).glob("*"))


def test_accept_records_proof_and_sets_first_party_cookies(client):
    consent = decide(client, analytics=True, location=True, origin=None)
    stored = db.session.get(Consent, consent["consent_id"])
    assert stored.visitor_id == consent["visitor_id"]
    assert (stored.analytics, stored.location, stored.marketing) == (True, True, False)
    assert stored.expires_at - stored.created_at == timedelta(days=182)
    banner = db.session.get(BannerVersion, stored.banner_sha256)
    assert banner is not None and "amniotic" in banner.content.lower()
    # Same-origin request in the test client: the collector sets the cookies itself.
    cookies = {c.key: c.value for c in client._cookies.values()}
    assert cookies["amn_vid"] == consent["visitor_id"]
    assert cookies["amn_consent"].startswith(consent["consent_id"] + "|2026-11-01|110|")


def test_cross_site_collector_leaves_cookies_to_the_banner(client):
    decide(client, origin=SITE)
    assert not list(client._cookies.values())


def test_refusal_stores_nothing_that_identifies(client):
    visitor = hex32()
    decide(client, analytics=False, visitor_id=visitor)
    stored = db.session.scalars(select(Consent)).one()
    assert stored.visitor_id is None
    assert not (stored.analytics or stored.location or stored.marketing)
    assert stored.method == "refuse_all"


def test_pageview_with_consent_is_enriched(client, app):
    consent = decide(client, analytics=True, location=True)
    response = beacon(client, consent, path="/projets/identite-tannerie")
    assert response.status_code == 202
    assert drain() == 1
    visit = db.session.scalars(select(Visit)).one()
    assert visit.ip == KNOWN_IP
    assert visit.dns_name == "host-89-160-20-112.bredband2.se"
    assert (visit.asn, visit.organization) == (29518, "Bredband2 AB")
    assert (visit.country, visit.city) == ("SE", "Linköping")
    assert (visit.browser, visit.os, visit.device) == ("Firefox", "Linux", "desktop")
    page = db.session.get(Page, visit.entry_page_id)
    assert (page.path, page.section) == ("/projets/identite-tannerie", "projets")
    assert spooled_text(app) == ""


def test_location_needs_its_own_consent(client):
    consent = decide(client, analytics=True, location=False)
    beacon(client, consent)
    drain()
    visit = db.session.scalars(select(Visit)).one()
    assert (visit.country, visit.city) == (None, None)
    assert visit.organization == "Bredband2 AB"


@pytest.mark.parametrize("case", ["none", "unknown", "other_visitor", "withdrawn", "expired",
                                  "refused", "old_policy"])
def test_beacon_without_live_consent_stores_nothing(client, app, case):
    consent = decide(client, analytics=case != "refused")
    if case == "none":
        consent = {"visitor_id": hex32(), "consent_id": None}
    elif case == "unknown":
        consent = {**consent, "consent_id": hex32()}
    elif case == "other_visitor":
        consent = {**consent, "visitor_id": hex32()}
    elif case == "withdrawn":
        decide(client, analytics=False, visitor_id=consent["visitor_id"])
    elif case == "expired":
        db.session.execute(update(Consent).values(expires_at=Consent.created_at))
        db.session.commit()
    elif case == "refused":
        consent = {**consent, "visitor_id": hex32()}
    elif case == "old_policy":
        consent = decide(client, policy_version="2020-01-01")
    response = beacon(client, consent)
    assert response.status_code == 403
    assert response.get_json()["error"] == "consent_required"
    assert KNOWN_IP not in spooled_text(app)
    drain()
    assert count(Visit) == count(Pageview) == 0


def test_visits_split_after_thirty_minutes_and_keep_previous_page(client):
    consent = decide(client)
    beacon(client, consent, path="/")
    beacon(client, consent, path="/projets/")
    drain()
    first, second = db.session.scalars(select(Pageview).order_by(Pageview.id)).all()
    assert first.visit_id == second.visit_id
    assert first.prev_page_id is None and second.prev_page_id == first.page_id
    visit = db.session.get(Visit, first.visit_id)
    assert visit.pageviews == 2 and visit.exit_page_id == second.page_id
    visit.last_seen_at -= timedelta(minutes=31)
    db.session.commit()
    beacon(client, consent, path="/studio/")
    drain()
    assert count(Visit) == 2


def test_redelivered_beacon_is_stored_once(client):
    consent = decide(client)
    event_id = hex32()
    assert beacon(client, consent, event_id=event_id).status_code == 202
    assert beacon(client, consent, event_id=event_id).status_code == 202
    drain()
    beacon(client, consent, event_id=event_id)
    drain()
    assert count(Pageview) == 1
    assert db.session.scalars(select(Visit)).one().pageviews == 1


def test_engagement_keeps_the_largest_cumulative_time(client):
    consent = decide(client)
    pageview_id = hex32()
    beacon(client, consent, event_id=pageview_id)
    for engaged in (4000, 9000, 7000):
        response = beacon(client, consent, type="engagement", pageview_id=pageview_id,
                          engaged_ms=engaged)
        assert response.status_code == 202
    drain()
    pageview = db.session.scalars(select(Pageview)).one()
    assert pageview.engaged_ms == 9000
    assert db.session.get(Visit, pageview.visit_id).engaged_ms == 9000


def test_engagement_waits_for_a_pageview_spooled_elsewhere(client, app):
    consent = decide(client)
    pageview_id = hex32()
    beacon(client, consent, type="engagement", pageview_id=pageview_id, engaged_ms=1500)
    drain()
    assert count(Pageview) == 0
    beacon(client, consent, event_id=pageview_id)
    drain()
    assert db.session.scalars(select(Pageview)).one().engaged_ms == 1500


def test_erasure_before_the_drain_wins(client, app):
    consent = decide(client)
    beacon(client, consent)
    db.session.execute(Consent.__table__.delete())
    db.session.commit()
    drain()
    assert count(Visit) == 0 and spooled_text(app) == ""


def test_cors_for_configured_sites_only(client):
    allowed = client.options("/api/collect", headers={"Origin": SITE})
    assert allowed.headers["Access-Control-Allow-Origin"] == SITE
    other = client.options("/api/collect", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_beacon_answer_carries_the_same_headers_as_any_api_answer(client, monkeypatch,
                                                                    caplog):
    # Beacons are answered in front of Flask (tracker.web.collector): same contract.
    consent = decide(client)
    accepted = beacon(client, consent)
    assert accepted.status_code == 202
    assert accepted.get_json()["event_id"]
    refused = beacon(client, None)
    assert refused.status_code == 403
    for response in (accepted, refused):
        assert response.headers["Access-Control-Allow-Origin"] == SITE
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["Vary"] == "Origin"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert len(response.headers["X-Request-ID"]) == 16
    echoed = client.post("/api/collect", data=b"{", content_type="text/plain",
                         headers={"X-Request-ID": "trace-1", "Origin": "https://evil.example"})
    assert echoed.headers["X-Request-ID"] == "trace-1"
    assert "Access-Control-Allow-Origin" not in echoed.headers
    # Other methods on the path are Flask's (the preflight: test_cors_for_configured_sites_only).
    wrong_method = client.get("/api/collect")
    assert wrong_method.status_code == 405
    assert set(wrong_method.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert wrong_method.get_json()["error"] == "method_not_allowed"

    def broken(beacon, *, ip, user_agent, now):
        raise RuntimeError(f"disk on fire near {ip}")

    monkeypatch.setattr(runtime.ingest(), "accept", broken)
    with caplog.at_level(logging.ERROR, logger="tracker.collector"):
        failed = beacon(client, consent)
    assert failed.status_code == 500
    assert failed.get_json()["request_id"] == failed.headers["X-Request-ID"]
    assert "disk on fire" not in failed.get_data(as_text=True)
    # The log says where it failed, without the message (it quoted the address).
    assert "RuntimeError" in caplog.text and "broken" in caplog.text
    assert KNOWN_IP not in caplog.text


def test_banner_is_served_with_its_hash(client):
    response = client.get("/static/consent-banner.js")
    assert response.status_code == 200
    assert response.headers["ETag"] == f'"{runtime.banner().sha256}"'
    assert client.get("/").data.count(b"consent-banner.js") == 1


VALID = {"type": "pageview", "url": SITE + "/", "referrer": "", "title": "t"}


@pytest.mark.parametrize(("body", "content_type", "status", "field"), [
    (b"{not json", "text/plain", 422, "body"),
    (b"\xff\xfe", "text/plain", 422, "body"),
    (b"[1, 2]", "application/json", 422, "body"),
    (json.dumps({**VALID, "type": "click"}).encode(), "text/plain", 422, "type"),
    (json.dumps({**VALID, "url": 42}).encode(), "text/plain", 422, "url"),
    (json.dumps({**VALID, "url": "https://evil.example/"}).encode(), "text/plain", 422, "url"),
    (json.dumps({**VALID, "url": "javascript:alert(1)"}).encode(), "text/plain", 422, "url"),
    (json.dumps({**VALID, "visitor_id": "not-hex"}).encode(), "text/plain", 422, "visitor_id"),
    (json.dumps({**VALID, "title": "x" * 301}).encode(), "text/plain", 422, "title"),
    (json.dumps({**VALID, "title": "a\x00b"}).encode(), "text/plain", 422, "title"),
    (json.dumps({**VALID, "type": "engagement", "engaged_ms": "5"}).encode(), "text/plain",
     422, "engaged_ms"),
    (json.dumps({**VALID, "type": "engagement", "engaged_ms": -1}).encode(), "text/plain",
     422, "engaged_ms"),
    (json.dumps(VALID).encode(), "application/xml", 415, None),
    (json.dumps({**VALID, "title": "x" * 9000}).encode(), "text/plain", 413, None),
])
def test_bad_beacons_get_a_clear_error(client, body, content_type, status, field):
    response = client.post("/api/collect", data=body, content_type=content_type)
    assert response.status_code == status
    payload = response.get_json()
    assert payload["reason"]
    if field:
        assert payload["field"] == field


@pytest.mark.parametrize(("body", "field"), [
    ({"choices": {"analytics": True}}, "choices.location"),
    ({"choices": {"analytics": "yes", "location": False, "marketing": False}},
     "choices.analytics"),
    ({"choices": {"analytics": True, "location": False, "marketing": False, "ads": True}},
     "choices"),
    ({"choices": {"analytics": True, "location": False, "marketing": False}, "lang": "de",
      "policy_version": "1"}, "lang"),
    ({"choices": {"analytics": True, "location": False, "marketing": False}, "lang": "fr"},
     "policy_version"),
])
def test_bad_consents_get_a_clear_error(client, body, field):
    response = client.post("/api/consent", json=body)
    assert response.status_code == 422
    assert response.get_json()["field"] == field
    assert count(Consent) == 0


def test_forged_engagement_cannot_touch_another_visitors_pageview(client):
    victim = decide(client)
    pageview_id = hex32()
    beacon(client, victim, event_id=pageview_id)
    attacker = decide(client)
    beacon(client, attacker, type="engagement", pageview_id=pageview_id, engaged_ms=99999)
    drain()
    assert db.session.scalars(select(Pageview)).one().engaged_ms == 0


def test_user_agent_of_a_bot_is_flagged(client):
    consent = decide(client)
    beacon(client, consent, user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)")
    beacon(client, decide(client), user_agent=FIREFOX)
    drain()
    assert sorted(v.is_bot for v in db.session.scalars(select(Visit))) == [False, True]
