"""See my data / Delete my data from the banner's settings panel, in Chromium, against the
live tracker (which serves the demo site and so shares its cookies)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.browser.conftest import cookie, wait_for
from tests.helpers import KNOWN_IP
from tracker.models import Consent, ErasureRecord, Pageview, Visit

pytestmark = pytest.mark.browser


def accepted_with_a_visit(page, live_server) -> str:
    page.goto(live_server.url + "/projets/")
    page.get_by_role("button", name="Tout accepter").click()
    wait_for(page, lambda: cookie(page, "amn_vid") is not None)
    visitor_id = cookie(page, "amn_vid")
    wait_for(page, lambda: live_server.drain() or live_server.query(
        select(Visit.id).where(Visit.visitor_id == visitor_id)))
    return visitor_id


def open_settings(page) -> None:
    page.get_by_role("button", name="Gestion des cookies").click()
    page.get_by_role("button", name="Voir mes données").wait_for()


def test_see_my_data_downloads_everything_stored(visitor, live_server):
    visitor_id = accepted_with_a_visit(visitor, live_server)
    open_settings(visitor)
    with visitor.expect_download() as download:
        visitor.get_by_role("button", name="Voir mes données").click()
    assert download.value.suggested_filename == "my-data.json"
    data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert data["visitor_id"] == visitor_id
    assert data["consents"][0]["analytics"] is True
    (visit,) = data["visits"]
    assert visit["ip"] == KNOWN_IP and visit["organisation"] == "Bredband2 AB"
    assert visit["dns_name"] == "host-89-160-20-112.bredband2.se"
    assert [p["page"] for p in visit["pageviews"]] == ["/projets/"]


def test_delete_my_data_erases_it_and_the_cookies(visitor, live_server):
    visitor_id = accepted_with_a_visit(visitor, live_server)
    open_settings(visitor)
    visitor.once("dialog", lambda dialog: dialog.accept())
    visitor.get_by_role("button", name="Supprimer mes données").click()
    visitor.get_by_text("Données supprimées.").wait_for()
    assert cookie(visitor, "amn_vid") is None and cookie(visitor, "amn_consent") is None
    assert live_server.query(select(Visit.id)) == []
    assert live_server.query(select(Pageview.id)) == []
    assert live_server.query(select(Consent.id).where(Consent.visitor_id == visitor_id)) == []
    (record,) = live_server.query(select(ErasureRecord.counts))
    assert json.loads(record[0]) == {"consents": 1, "pageviews": 1, "visits": 1}
    # The banner asks again, and nothing more is recorded meanwhile.
    visitor.goto(live_server.url + "/studio/")
    assert visitor.get_by_role("button", name="Tout accepter").is_visible()
    live_server.drain()
    assert live_server.query(select(Visit.id)) == []


def test_a_declined_confirmation_deletes_nothing(visitor, live_server):
    accepted_with_a_visit(visitor, live_server)
    open_settings(visitor)
    visitor.once("dialog", lambda dialog: dialog.dismiss())
    visitor.get_by_role("button", name="Supprimer mes données").click()
    visitor.wait_for_timeout(300)
    assert len(live_server.query(select(Visit.id))) == 1
    assert cookie(visitor, "amn_vid") is not None
