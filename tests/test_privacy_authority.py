"""Authorities' lookups (dpo only, legal reference mandatory, audited, exportable) and the
DPO's consent-proof lookup."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import datetime

import pytest
from sqlalchemy import func, select

from tests.helpers import csrf_token, hex32, login, make_user, seed_consent, seed_visit
from tracker.extensions import db
from tracker.models import AuditEntry, AuthorityLookup

DAY = datetime(2026, 10, 5, 14, 0)


@pytest.fixture
def visits(app):
    mine = seed_consent(hex32(), DAY)
    seed_visit(mine, DAY, ip="192.0.2.10", dns_name="a.example")
    seed_visit(mine, DAY.replace(day=20), ip="192.0.2.10", dns_name="late.example")
    other = seed_consent(hex32(), DAY)
    seed_visit(other, DAY, ip="192.0.2.77", dns_name="b.example")
    seed_visit(other, DAY, ip="198.51.100.1", dns_name="c.example")
    seed_visit(other, DAY, ip="2001:db8::5", dns_name="v6.example")


@pytest.fixture
def dpo(client):
    make_user("dpo@amniotic.studio", "dpo")
    login(client, "dpo@amniotic.studio")
    return client


def look(client, network: str, *, reference: str = "Réquisition CPP art. 60-1, PV 2026/123",
         fmt: str = "html", start: str = "2026-10-01T00:00", end: str = "2026-10-10T00:00"):
    return client.post("/staff/privacy/lookup", data={
        "network": network, "starts_at": start, "ends_at": end,
        "authority": "Gendarmerie de Saint-Junien", "legal_reference": reference,
        "format": fmt, "csrf_token": csrf_token(client, "/staff/privacy/lookup")})


def test_lookup_of_one_address_within_the_window(dpo, visits):
    page = look(dpo, "192.0.2.10").get_data(as_text=True)
    assert "a.example" in page and "late.example" not in page and "b.example" not in page
    assert "Linköping" in page  # the dpo may read location too
    lookup = db.session.scalar(select(AuthorityLookup))
    assert (lookup.network, lookup.result_count) == ("192.0.2.10/32", 1)
    assert lookup.legal_reference.startswith("Réquisition")
    entry = db.session.scalar(select(AuditEntry).filter_by(action="authority.lookup"))
    assert entry.target == f"authority_lookup:{lookup.id}"
    assert json.loads(entry.details)["results"] == 1
    assert "192.0.2.10" not in entry.details  # the address stays in the lookup record only


@pytest.mark.parametrize(("network", "dns_names"), [
    ("192.0.2.0/24", {"a.example", "b.example"}),
    ("2001:db8::/32", {"v6.example"}),
    ("198.51.100.1", {"c.example"}),
])
def test_lookup_of_a_network_exported_as_csv(dpo, visits, network, dns_names):
    response = look(dpo, network, fmt="csv")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {r["dns_name"] for r in rows} == dns_names
    lookup = db.session.scalar(select(AuthorityLookup))
    assert lookup.results_sha256 == hashlib.sha256(response.data).hexdigest()


@pytest.mark.parametrize(("fields", "message"), [
    ({"reference": ""}, "is mandatory"),
    ({"reference": "x"}, "is mandatory"),
    ({"start": "2026-10-10T00:00", "end": "2026-10-01T00:00"}, "start before the end"),
    ({"start": "yesterday"}, "start before the end"),
])
def test_a_lookup_without_legal_reference_or_window_is_refused(dpo, visits, fields, message):
    response = look(dpo, "192.0.2.10", **fields)
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(AuthorityLookup)) == 0


def test_an_invalid_network_is_refused(dpo, visits):
    response = look(dpo, "192.0.2.300")
    assert response.status_code == 422 and "not an IP address" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["admin", "analyst", "marketing", "customer_relations"])
def test_only_the_dpo_can_look_up(client, visits, role):
    make_user(f"{role}@amniotic.studio", role)
    login(client, f"{role}@amniotic.studio")
    assert client.get("/staff/privacy/lookup").status_code == 403
    assert client.post("/staff/privacy/lookup", data={"network": "192.0.2.10"}).status_code \
        in (400, 403)
    assert db.session.scalar(select(func.count()).select_from(AuthorityLookup)) == 0


def test_past_lookups_are_listed_and_that_read_is_audited(dpo, visits):
    look(dpo, "192.0.2.0/24")
    page = dpo.get("/staff/privacy/lookups").get_data(as_text=True)
    assert "192.0.2.0/24" in page and "Gendarmerie de Saint-Junien" in page
    assert db.session.scalar(select(AuditEntry).filter_by(action="authority.lookups_read"))


def test_consent_proofs_by_visitor_or_consent_id(dpo):
    proof = seed_consent(hex32(), DAY)
    by_visitor = dpo.get(f"/staff/privacy/consents?q={proof.visitor_id}").get_data(as_text=True)
    assert proof.id in by_visitor and "accept_all" in by_visitor
    assert proof.id in dpo.get(f"/staff/privacy/consents?q={proof.id}").get_data(as_text=True)
    reads = db.session.scalars(select(AuditEntry).filter_by(action="consent_proofs.read")).all()
    assert len(reads) == 2 and proof.visitor_id not in reads[0].details
