"""The banner against the real collector in Chromium: decision -> proof -> beacon -> visit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.browser.conftest import cookie, wait_for
from tests.helpers import KNOWN_IP
from tracker.models import Consent, Page, Pageview, Visit

pytestmark = pytest.mark.browser


def test_nothing_is_sent_before_a_decision(visitor, live_server):
    visitor.goto(live_server.url + "/")
    assert visitor.get_by_role("button", name="Tout accepter").is_visible()
    assert visitor.get_by_role("button", name="Tout refuser").is_visible()
    visitor.wait_for_timeout(500)
    assert visitor.api_calls == []
    assert cookie(visitor, "amn_vid") is None


def test_refuse_all_records_a_refusal_and_tracks_nothing(visitor, live_server):
    visitor.goto(live_server.url + "/")
    visitor.get_by_role("button", name="Tout refuser").click()
    wait_for(visitor, lambda: live_server.query(select(Consent.id)))
    (consent,) = [row[0] for row in live_server.query(select(Consent))]
    assert consent.visitor_id is None and not consent.analytics
    visitor.goto(live_server.url + "/projets/")
    visitor.wait_for_timeout(300)
    assert [c for c, _ in visitor.api_calls] == ["consent"]
    assert cookie(visitor, "amn_vid") is None
    live_server.drain()
    assert live_server.query(select(Visit.id)) == []


def test_accept_all_stores_an_enriched_visit_then_withdrawal_stops_it(visitor, live_server):
    visitor.goto(live_server.url + "/projets/")
    visitor.get_by_role("button", name="Tout accepter").click()
    wait_for(visitor, lambda: any(c == "collect" for c, _ in visitor.api_calls))
    visitor_id = cookie(visitor, "amn_vid")
    assert visitor_id and len(visitor_id) == 32
    (consent,) = [row[0] for row in live_server.query(select(Consent))]
    assert consent.visitor_id == visitor_id and consent.analytics and consent.location
    wait_for(visitor, lambda: live_server.drain() or live_server.query(select(Visit.id)))
    (visit,) = [row[0] for row in live_server.query(select(Visit))]
    assert visit.visitor_id == visitor_id
    assert visit.ip == KNOWN_IP
    assert visit.dns_name == "host-89-160-20-112.bredband2.se"
    assert visit.organization == "Bredband2 AB" and visit.city == "Linköping"
    assert (visit.browser, visit.os, visit.device) == ("Chrome", "Windows", "desktop")
    paths = [p for (p,) in live_server.query(select(Page.path).join(
        Pageview, Pageview.page_id == Page.id))]
    assert paths == ["/projets/"]

    # Withdraw through the persistent "Gestion des cookies" control.
    visitor.click("[data-action=open-settings]")
    visitor.locator("[data-action=refuse]").last.click()
    wait_for(visitor, lambda: cookie(visitor, "amn_vid") is None)
    calls_before = len(visitor.api_calls)
    visitor.goto(live_server.url + "/studio/")
    visitor.wait_for_timeout(300)
    assert [c for c, _ in visitor.api_calls[calls_before:]] == []
    withdrawn = [row[0] for row in live_server.query(
        select(Consent).where(Consent.visitor_id == visitor_id))]
    assert withdrawn[0].withdrawn_at is not None


def test_engagement_arrives_when_the_page_is_hidden(visitor, live_server):
    visitor.goto(live_server.url + "/journal/")
    visitor.get_by_role("button", name="Tout accepter").click()
    wait_for(visitor, lambda: any(c == "collect" for c, _ in visitor.api_calls))
    visitor.wait_for_timeout(1200)
    other = visitor.context.new_page()  # keeps the context (and its event loop) alive
    visitor.close(run_before_unload=True)
    def engaged():
        live_server.drain()
        rows = live_server.query(select(Pageview.engaged_ms))
        return rows and rows[0][0] > 0
    wait_for(other, engaged)
    (engaged_ms,) = live_server.query(select(Pageview.engaged_ms))[0]
    assert 1000 <= engaged_ms < 60_000
