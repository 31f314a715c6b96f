"""Visitors' own data from the banner: "See my data" and "Delete my data", keyed by amn_vid."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from tests.conftest import app_config
from tests.helpers import KNOWN_IP, SITE, beacon, decide, dump_database, hex32
from tracker import create_app
from tracker.extensions import db
from tracker.models import AuditEntry, Consent, ErasureRecord, Pageview, Visit
from tracker.services import audit, runtime


def drain() -> int:
    return runtime.ingest().drain()


def me(client, what: str, visitor_id: str | None, origin: str | None = SITE, **kwargs):
    headers = {"Origin": origin} if origin else {}
    return client.post(f"/api/me/{what}", json={"visitor_id": visitor_id}, headers=headers,
                       **kwargs)


def visited(client, **choices) -> dict:
    """A visitor who consented, viewed two pages and spent time on the first."""
    consent = decide(client, **choices)
    first = beacon(client, consent, path="/projets/").get_json()["event_id"]
    beacon(client, consent, path="/studio/")
    beacon(client, consent, path="/projets/", type="engagement", pageview_id=first,
           engaged_ms=4200)
    drain()
    drain()  # the engagement waits for its pageview if they were drained together
    return consent


def test_see_my_data_returns_everything_stored_under_the_id(client):
    consent = visited(client, location=True)
    response = me(client, "export", consent["visitor_id"])
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="my-data.json"'
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    data = json.loads(response.data)
    assert data["visitor_id"] == consent["visitor_id"]
    assert [c["id"] for c in data["consents"]] == [consent["consent_id"]]
    assert data["consents"][0]["analytics"] is True
    (visit,) = data["visits"]
    assert visit["ip"] == KNOWN_IP and visit["dns_name"] == "host-89-160-20-112.bredband2.se"
    assert (visit["organisation"], visit["country"], visit["city"]) == \
        ("Bredband2 AB", "SE", "Linköping")
    assert visit["browser"] == "Firefox"
    assert [(p["page"], p["previous_page"]) for p in visit["pageviews"]] == \
        [("/projets/", None), ("/studio/", "/projets/")]
    assert visit["pageviews"][0]["engaged_ms"] == 4200
    assert all(p["time"].endswith("Z") for p in visit["pageviews"])


def test_the_id_reaches_only_its_own_data(client):
    mine, theirs = visited(client), visited(client)
    data = me(client, "export", mine["visitor_id"]).get_json()
    assert theirs["visitor_id"] not in json.dumps(data)
    assert theirs["consent_id"] not in json.dumps(data)
    unknown = me(client, "export", hex32()).get_json()
    assert unknown["consents"] == [] and unknown["visits"] == []


def test_delete_my_data_erases_everything_and_keeps_only_a_record(client, app):
    consent, other = visited(client), visited(client)
    vid = consent["visitor_id"]
    response = me(client, "erase", vid)
    assert response.status_code == 200
    body = response.get_json()
    assert body["erased"] is True
    assert body["counts"] == {"visits": 1, "pageviews": 2, "consents": 1}
    dump = dump_database()
    assert vid not in dump and consent["consent_id"] not in dump
    assert db.session.scalar(select(func.count()).select_from(Visit)) == 1  # the other's
    assert db.session.scalar(select(Visit.visitor_id)) == other["visitor_id"]
    record = db.session.get(ErasureRecord, body["erasure_id"])
    assert record.subject == "visitor" and json.loads(record.counts) == body["counts"]
    entry = db.session.scalar(select(AuditEntry).filter_by(action="erasure.visitor"))
    assert entry.target == f"erasure:{record.id}" and audit.verify().ok
    assert me(client, "export", vid).get_json()["visits"] == []


def test_erasing_also_removes_the_cookies_when_the_collector_shares_the_site(client):
    consent = decide(client, origin=None)  # same site: the collector set the cookies
    assert {c.key for c in client._cookies.values()} == {"amn_vid", "amn_consent"}
    response = me(client, "erase", consent["visitor_id"], origin=None)
    cleared = [h for h in response.headers.getlist("Set-Cookie") if "Max-Age=0" in h]
    assert {h.split("=")[0] for h in cleared} == {"amn_vid", "amn_consent"}
    assert not list(client._cookies.values())


def test_cross_site_erasure_leaves_the_cookies_to_the_banner(client):
    consent = decide(client)
    response = me(client, "erase", consent["visitor_id"])
    assert response.status_code == 200 and not response.headers.getlist("Set-Cookie")


def test_spooled_events_of_an_erased_visitor_are_dropped_at_drain(client):
    consent = decide(client)
    assert beacon(client, consent, path="/journal/").status_code == 202
    me(client, "erase", consent["visitor_id"])
    drain()
    assert db.session.scalar(select(func.count()).select_from(Pageview)) == 0
    assert consent["visitor_id"] not in dump_database()
    # And the erased consent no longer lets anything in.
    assert beacon(client, consent).status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"visitor_id": "XYZ"}, "visitor_id"), ({"visitor_id": None}, "visitor_id"),
    ({}, "visitor_id"), ({"visitor_id": "A" * 32}, "visitor_id"),
])
def test_malformed_requests_are_refused(client, body, field):
    response = client.post("/api/me/erase", json=body, headers={"Origin": SITE})
    assert response.status_code == 422 and response.get_json()["field"] == field
    assert db.session.scalar(select(func.count()).select_from(ErasureRecord)) == 0


def test_only_json_bodies_are_accepted(client):
    response = client.post("/api/me/export", data="visitor_id=x",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_cors_preflight_from_the_site(client):
    response = client.options("/api/me/erase", headers={
        "Origin": SITE, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Content-Type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    other = client.options("/api/me/erase", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_requests_are_rate_limited(database_url, tmp_path, dns_server):
    app = create_app(app_config(database_url, tmp_path, TRACKER_PRIVACY_RATE_LIMIT="3 per minute",
                                TRACKER_DNS_SERVERS=[dns_server.address]))
    with app.app_context():
        client = app.test_client()
        statuses = [me(client, "export", hex32()).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert me(client, "erase", hex32(), environ_base={"REMOTE_ADDR": "192.0.2.9"}) \
            .status_code == 200
        db.session.remove()
        db.engine.dispose()


def test_erasure_leaves_other_consents_of_nobody_in_place(client):
    refusal = decide(client, analytics=False)
    consent = visited(client)
    me(client, "erase", consent["visitor_id"])
    assert db.session.get(Consent, refusal["consent_id"]) is not None
