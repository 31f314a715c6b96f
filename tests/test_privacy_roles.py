"""Role tests generated from the register: each role reads exactly the processings it grants.

A world is seeded with one recognisable value per processing (a marker). Each staff role
signs in and reads every staff page it can reach: every GET route without arguments, those
whose arguments are integers (with id 1: each table holds one seeded row, so detail pages
show it), and the per-processing probes below (forms that need input). Then, for every
processing x role: a role the register grants must find the marker somewhere; any other
role must find it nowhere. Pages added later (by anyone) are crawled too.
"""

from __future__ import annotations

import re
import shutil
import types
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import FreshRequestClient, _truncate_all, app_config
from tests.helpers import (
    csrf_token,
    login,
    make_user,
    seed_consent,
    seed_contact,
    seed_recipient,
    seed_subscriber,
    seed_visit,
)
from tracker import create_app
from tracker.domain.register import PROCESSINGS, can_read
from tracker.domain.roles import ROLES
from tracker.extensions import db
from tracker.models import AuthorityLookup, PrivacyRequest, Visit
from tracker.services import audit

DAY = datetime(2026, 10, 5, 14, 0)
VISITOR = "7e57" * 8
IP = "203.0.113.77"
HOST = "host-77.analytics-marker.example"  # reports show "analytics-marker.example" only
CITY = "Markerville"
CONTACT_EMAIL, MESSAGE = "contact-marker@example.org", "contact-marker-message"
SUBSCRIBER = "newsletter-marker@example.org"
AUDIT_ACTOR = "audit-marker@amniotic.studio"
REQUESTER = "dsr-marker@example.org"
NETWORK = "198.18.7.0/24"

# What shows that a page disclosed a processing's personal data: any alternative, each a set
# of strings that must all appear in the same response. Location: a city tied to an address
# (aggregate reports rightly show cities, never next to an IP address).
MARKERS: dict[str, list[tuple[str, ...]]] = {
    "analytics": [(VISITOR,), (IP,), (HOST,)],
    "location": [(CITY, IP)],
    "consent_proofs": [],  # the seeded consent's id, known once seeded
    "contact_form": [(CONTACT_EMAIL,), (MESSAGE,)],
    "newsletter": [(SUBSCRIBER,)],
    # Opens are only shown as campaign totals: no staff view shows one person's opens.
    "email_open_tracking": [],
    "audit_log": [(AUDIT_ACTOR,)],
    "data_subject_requests": [(REQUESTER,)],
    "authority_requests": [(NETWORK,)],
}


def seed() -> str:
    consent = seed_consent(VISITOR, DAY)
    visit = seed_visit(consent, DAY, ip=IP, dns_name=HOST)
    db.session.get(Visit, visit.id).city = CITY
    seed_contact(CONTACT_EMAIL, DAY, MESSAGE)
    seed_recipient(seed_subscriber(SUBSCRIBER, DAY), DAY)
    db.session.add(PrivacyRequest(public_id="ab" * 16, kind="access", email=REQUESTER,
                                  details="", lang="fr", status="pending", created_at=DAY,
                                  verified_at=DAY, due_at=DAY + timedelta(days=30)))
    db.session.add(AuthorityLookup(created_at=DAY, actor_id=1, authority="Police",
                                   legal_reference="CPP 60-1", network=NETWORK, starts_at=DAY,
                                   ends_at=DAY, result_count=0, results_sha256="0" * 64))
    audit.record(types.SimpleNamespace(id=999, email=AUDIT_ACTOR), "test.seed", "x")
    db.session.commit()
    return consent.id


# Forms that need input to show anything: (processing they read, how to ask).
def _lookup(client: FlaskClient, consent_id: str) -> str:
    return client.post("/staff/privacy/lookup", data={
        "network": IP, "starts_at": "2026-10-01T00:00", "ends_at": "2026-10-10T00:00",
        "authority": "Police", "legal_reference": "CPP art. 60-1",
        "csrf_token": csrf_token(client, "/staff/privacy/lookup")}).get_data(as_text=True) \
        if client.get("/staff/privacy/lookup").status_code == 200 else ""


def _consents(client: FlaskClient, consent_id: str) -> str:
    response = client.get(f"/staff/privacy/consents?q={consent_id}")
    return response.get_data(as_text=True) if response.status_code == 200 else ""


PROBES: list[Callable[[FlaskClient, str], str]] = [_lookup, _consents]


ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def crawl(app: Flask, client: FlaskClient, consent_id: str) -> list[str]:
    """Every page this signed-in client can read, as text."""
    pages = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in ("static", "site.demo") \
                or rule.rule in ("/staff/login", "/staff/2fa", "/staff/reauth"):
            continue
        if any(converter != "int" for converter, _ in ARGUMENT.findall(rule.rule)):
            continue
        path = rule.build(dict.fromkeys(rule.arguments, 1))[1] if rule.arguments else rule.rule
        response = client.get(path)
        if response.status_code == 200:
            pages.append(response.get_data(as_text=True))
    pages += [probe(client, consent_id) for probe in PROBES]
    return pages


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pages_by_role(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[dict]:
    """Sign in as each role once per engine and keep what it could read."""
    tmp = tmp_path_factory.mktemp(f"roles-{request.param}")
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp / "db.sqlite3")
        url = f"sqlite:///{tmp / 'db.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    app = create_app(app_config(url, tmp))
    app.test_client_class = FreshRequestClient
    with app.app_context():
        consent_id = seed()
        pages = {}
        for role in ROLES:
            email = f"{role}@amniotic.studio"
            make_user(email, role)
            client = app.test_client()
            assert login(client, email).status_code == 302, role
            pages[role] = crawl(app, client, consent_id)
        db.session.remove()
        db.engine.dispose()
    yield {"pages": pages, "markers": {**MARKERS, "consent_proofs": [(consent_id,)]}}
    if request.param == "postgresql":
        _truncate_all(url)


def _seen(pages: list[str], alternatives: list[tuple[str, ...]]) -> bool:
    return any(all(part in page for part in alternative)
               for page in pages for alternative in alternatives)


# Opens are only reported as campaign totals: no staff view shows one person's opens, so
# there is nothing to look for, for any role.
NOT_SHOWN_INDIVIDUALLY = {"email_open_tracking"}
SHOWN = [p.key for p in PROCESSINGS if p.key not in NOT_SHOWN_INDIVIDUALLY]


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("processing", SHOWN)
def test_role_reads_exactly_what_the_register_grants(pages_by_role, processing, role):
    markers = pages_by_role["markers"][processing]
    seen = _seen(pages_by_role["pages"][role], markers)
    if can_read(role, processing):
        assert seen, f"the register lets {role} read {processing}, but no page shows it"
    else:
        assert not seen, f"{role} reads {processing} data, which the register does not grant"


def test_every_processing_has_a_marker_or_a_reason():
    assert set(MARKERS) == {p.key for p in PROCESSINGS}
