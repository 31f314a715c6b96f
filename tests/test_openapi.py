"""The published OpenAPI description stays true: the suite's typical calls, valid and invalid,
are checked against it (request and response), each described answer is produced by a real
call, and the limits it publishes are the code's own.

Every call goes through `ContractClient`, which checks the answer of any described operation:
status documented, content type documented, body valid against its schema (formats included),
required headers present and valid. A request the server accepted (2xx) must be valid for the
description too.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from flask import Flask
from werkzeug.datastructures import MultiDict

from tests.conftest import FreshRequestClient, app_config
from tests.helpers import (
    SITE,
    Traffic,
    beacon,
    decide,
    hex32,
    login,
    mail_links,
    make_user,
    seed_contact,
    seed_recipient,
    seed_subscriber,
)
from tracker import create_app
from tracker.clock import utcnow
from tracker.config import load
from tracker.domain import reports as report_rules
from tracker.domain.consent import LANGS, METHODS, PURPOSES
from tracker.domain.payloads import (
    EVENT_TYPES,
    MAX_ENGAGED_MS,
    MAX_POLICY_VERSION,
    MAX_TITLE,
    MAX_URL,
)
from tracker.extensions import db
from tracker.services import reports, rights, staff
from tracker.web import openapi

NOT_SENT = object()


class Contract:
    """The description, and a check of one exchange against it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.routes = [
            (method.upper(), re.compile("^" + re.sub(r"\{[^}/]+\}", "[^/]+", path) + "$"),
             path, operation)
            for path, operations in spec["paths"].items()
            for method, operation in operations.items()]
        self.seen: set[tuple[str, int]] = set()

    def find(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for verb, pattern, template, operation in self.routes:
            if verb == method and pattern.match(path):
                return f"{method} {template}", operation
        return None

    def _ref(self, item: dict[str, Any]) -> dict[str, Any]:
        if "$ref" not in item:
            return item
        node: Any = self.spec
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return node

    def check(self, method: str, path: str, query: MultiDict, body: Any,
              response: Any) -> None:
        found = self.find(method, path)
        if found is None:
            return
        label, operation = found
        status = response.status_code
        self.seen.add((label, status))
        documented = operation["responses"].get(str(status))
        assert documented is not None, f"{label} answered an undocumented {status}"
        content = documented.get("content")
        if content:
            assert response.mimetype in content, \
                f"{label} {status} answered {response.mimetype}, not one of {list(content)}"
            if response.mimetype == openapi.JSON:
                _valid(content[openapi.JSON]["schema"], json.loads(response.data),
                       f"{label} {status} body")
        for name, header in documented.get("headers", {}).items():
            header = self._ref(header)
            value = response.headers.get(name)
            if header.get("required"):
                assert value is not None, f"{label} {status} lacks the {name} header"
            if value is not None:
                _valid(header["schema"], value, f"{label} {status} header {name}")
        if 200 <= status < 300:
            self._check_request(label, operation, path, query, body, response)

    def _check_request(self, label: str, operation: dict[str, Any], path: str,
                       query: MultiDict, body: Any, response: Any) -> None:
        values = dict(query.items())
        template = label.split(" ", 1)[1]
        names = re.findall(r"\{([^}/]+)\}", template)
        pattern = re.sub(r"\{[^}/]+\}", "([^/]+)", template)
        values.update(zip(names, re.fullmatch(pattern, path).groups(), strict=True))
        for parameter in operation.get("parameters", []):
            if parameter["name"] in values:
                _valid(parameter["schema"], _coerce(parameter["schema"],
                                                    values[parameter["name"]]),
                       f"{label} parameter {parameter['name']}")
        if body is not NOT_SENT and "requestBody" in operation:
            media = response.request.mimetype or "text/plain"
            schema = operation["requestBody"]["content"][media]["schema"]
            _valid(schema, body, f"{label} request body")


def _coerce(schema: dict[str, Any], value: str) -> Any:
    """Query strings are text: read an integer where the schema wants one."""
    wants_int = schema.get("type") == "integer" or any(
        s.get("type") == "integer" for s in schema.get("anyOf", []))
    if wants_int and value.isdigit():
        return int(value)
    return value


def _valid(schema: dict[str, Any], instance: Any, what: str) -> None:
    errors = [f"{e.instance_path}: {e.message}" for e in
              jsonschema_rs.validator_for(schema, validate_formats=True).iter_errors(instance)]
    assert not errors, f"{what} breaks the description: {errors[:3]}"


def _sent_json(kwargs: dict[str, Any]) -> Any:
    if "json" in kwargs:
        return kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, str | bytes):
        try:
            return json.loads(data)
        except ValueError:
            return NOT_SENT
    return NOT_SENT


class ContractClient(FreshRequestClient):
    contract: Contract

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        body = _sent_json(kwargs)
        response = super().open(*args, **kwargs)
        request = response.request
        self.contract.check(request.method, request.path, request.args, body, response)
        return response


def contract_client(app: Flask) -> ContractClient:
    spec = app.test_client().get("/api/openapi.json").get_json()
    app.test_client_class = ContractClient
    client: ContractClient = app.test_client()  # type: ignore[assignment]
    client.contract = Contract(spec)
    return client


@pytest.fixture
def client(app: Flask) -> ContractClient:
    return contract_client(app)


def seen(client: ContractClient, label: str) -> set[int]:
    return {status for op, status in client.contract.seen if op == label}


def documented(client: ContractClient, label: str) -> set[int]:
    method, path = label.split(" ", 1)
    return {int(s) for s in client.contract.spec["paths"][path][method.lower()]["responses"]}


@pytest.fixture
def limited(database_url: str, tmp_path: Path, dns_server: Any) -> Iterator[ContractClient]:
    """A client of an app whose every public limit is 2 requests a minute."""
    app = create_app(app_config(database_url, tmp_path, TRACKER_DNS_SERVERS=[dns_server.address],
                                TRACKER_CONSENT_RATE_LIMIT="2 per minute",
                                TRACKER_COLLECT_RATE_LIMIT="2 per minute",
                                TRACKER_PRIVACY_RATE_LIMIT="2 per minute"))
    with app.app_context():
        yield contract_client(app)
        db.session.remove()
        db.engine.dispose()


# -- the document itself ---------------------------------------------------------------------

def test_the_description_is_valid_openapi_3_1(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(spec).validate()  # against the OpenAPI 3.1 meta-schema
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            bodies = [c["schema"] for c in operation.get("requestBody", {})
                      .get("content", {}).values()]
            bodies += [c["schema"] for r in operation["responses"].values()
                       for c in r.get("content", {}).values()]
            bodies += [p["schema"] for p in operation.get("parameters", [])]
            for schema in bodies:
                assert jsonschema_rs.meta.is_valid(schema), (method, path, schema)


def test_every_json_route_is_described(app):
    """A new /api/ route, or a described path that no longer exists, fails here."""
    spec = openapi.build(app.config, list(reports.REPORTS))
    described = {(m.upper(), re.sub(r"\{[^}]+\}", "<>", p))
                 for p, ops in spec["paths"].items() for m in ops}
    routes = {(m, re.sub(r"<[^>]+>", "<>", rule.rule))
              for rule in app.url_map.iter_rules() for m in rule.methods - {"HEAD", "OPTIONS"}}
    api_routes = {r for r in routes if r[1].startswith("/api/")}
    assert api_routes == {d for d in described if d[1].startswith("/api/")}
    assert described <= routes


def test_the_published_limits_are_the_code_s_own(app):
    spec = openapi.build(app.config, list(reports.REPORTS))
    paths = spec["paths"]

    def body(path: str) -> dict[str, Any]:
        return paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    consent = body("/api/consent")["properties"]
    assert consent["policy_version"]["maxLength"] == MAX_POLICY_VERSION
    assert consent["lang"]["enum"] == list(LANGS)
    assert consent["method"]["enum"] == [*METHODS, None]
    assert consent["choices"]["required"] == list(PURPOSES)
    variants = body("/api/collect")["oneOf"]
    assert [v["properties"]["type"]["const"] for v in variants] == list(EVENT_TYPES)
    for variant in variants:
        fields = variant["properties"]
        assert fields["url"]["maxLength"] == fields["referrer"]["maxLength"] == MAX_URL
        assert fields["title"]["maxLength"] == MAX_TITLE
        assert SITE.replace(".", "\\.") in fields["url"]["pattern"]
    assert variants[1]["properties"]["engaged_ms"]["maximum"] == MAX_ENGAGED_MS
    report = {p["name"]: p["schema"] for p in paths["/api/reports/{name}"]["get"]["parameters"]}
    assert report["name"]["enum"] == list(reports.REPORTS)
    assert report["preset"]["enum"] == ["", *report_rules.PRESETS]
    assert report["focus"]["maxLength"] == report_rules.MAX_FILTER_LENGTH
    # Settings flow into the description too.
    other = openapi.build({**load(), "TRACKER_MAX_BODY_BYTES": 1234,
                           "TRACKER_COLLECT_RATE_LIMIT": "7 per second",
                           "TRACKER_SITE_ORIGINS": ["https://other.example"]}, ["pages"])
    collect = other["paths"]["/api/collect"]["post"]
    assert "1234 bytes" in collect["requestBody"]["description"]
    assert "7 per second" in collect["responses"]["429"]["description"]
    assert "other\\.example" in collect["requestBody"]["content"]["text/plain"]["schema"][
        "oneOf"][0]["properties"]["url"]["pattern"]


# -- the public API: every documented answer, produced and checked ---------------------------

def test_consent_answers(client, limited):
    decide(client)
    decide(client, analytics=False)
    client.post("/api/consent", json={"choices": {"analytics": True}, "lang": "fr",
                                      "policy_version": "2026-11-01"})
    client.post("/api/consent", data="x" * 9000, content_type="application/json")
    client.post("/api/consent", data="{}", content_type="application/x-www-form-urlencoded")
    assert seen(client, "POST /api/consent") == {201, 413, 415, 422}
    for _ in range(3):
        limited.post("/api/consent", json={"choices": dict.fromkeys(PURPOSES, False),
                                           "lang": "en", "policy_version": "2026-11-01"})
    assert seen(limited, "POST /api/consent") == {201, 429}


def test_collect_answers(client, limited):
    consent = decide(client)
    first = beacon(client, consent, path="/projets/").get_json()["event_id"]
    beacon(client, consent, type="engagement", pageview_id=first, engaged_ms=1500)
    beacon(client, consent, referrer="https://www.google.fr/", title=None)
    beacon(client, None)
    beacon(client, consent, url="https://elsewhere.example/")
    beacon(client, consent, title="t" * (MAX_TITLE + 1))
    client.post("/api/collect", data=b"\xff\xfe", content_type="text/plain")
    client.post("/api/collect", data="x" * 9000, content_type="text/plain")
    client.post("/api/collect", data="{}", content_type="multipart/form-data; boundary=x")
    assert seen(client, "POST /api/collect") == {202, 403, 413, 415, 422}
    for _ in range(3):
        beacon(limited, None)
    assert seen(limited, "POST /api/collect") == {403, 429}


def test_collect_answers_503_when_the_consent_store_is_down(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'missing' / 'tracker.sqlite3'}"
    else:
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = f"postgresql+psycopg://tracker@127.0.0.1:{port}/tracker?connect_timeout=2"
    app = create_app(app_config(url, tmp_path))
    with app.app_context():
        client = contract_client(app)
        response = beacon(client, {"visitor_id": hex32(), "consent_id": hex32()})
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert seen(client, "POST /api/collect") == {503}
        db.engine.dispose()


def test_my_data_answers(client, limited):
    consent = decide(client)
    beacon(client, consent)
    for what in ("export", "erase"):
        client.post(f"/api/me/{what}", json={"visitor_id": consent["visitor_id"]})
        client.post(f"/api/me/{what}", json={"visitor_id": "not an id"})
        client.post(f"/api/me/{what}", data="{" * 9000, content_type="application/json")
        client.post(f"/api/me/{what}", data="{}", content_type="application/xml")
        assert seen(client, f"POST /api/me/{what}") == {200, 413, 415, 422}
        for _ in range(3):
            limited.post(f"/api/me/{what}", json={"visitor_id": hex32()})
        assert seen(limited, f"POST /api/me/{what}") == {200, 429}


# -- staff JSON ------------------------------------------------------------------------------

@pytest.fixture
def traffic(app: Flask) -> None:
    t = Traffic()
    now = utcnow()
    for n in range(3):
        who = t.visitor(now - timedelta(hours=2), location=True)
        t.visit(who, now - timedelta(hours=1, minutes=n * 5),
                [("/", 0, 12_000), ("/projets/", 30, 40_000), ("/contact/", 90, 5_000)],
                referrer="https://www.google.fr/", utm="utm_source=newsletter")
    t.store()


def test_report_answers(client, traffic):
    user = make_user("analyst@amniotic.studio", "analyst")
    token = {"Authorization": "Bearer " + staff.create_token(user, "t", now=utcnow())}
    for name in reports.REPORTS:
        assert client.get(f"/api/reports/{name}?preset=7d", headers=token).status_code == 200
    client.get("/api/reports/flows?preset=7d&focus=/projets/&by=page&limit=5", headers=token)
    client.get("/api/reports/pages?preset=today&device=desktop&country=se", headers=token)
    client.get("/api/reports/pages?preset=7d&format=csv&table=entry", headers=token)
    client.get("/api/reports/overview?from=2026-01-01&to=2026-01-31&granularity=week",
               headers=token)
    client.get("/api/reports/overview?granularity=minute", headers=token)
    client.get("/api/reports/visitors", headers=token)
    client.get("/api/reports/pages")
    make_user("desk@amniotic.studio", "customer_relations")
    assert login(client, "desk@amniotic.studio").status_code == 302
    client.get("/api/reports/pages")
    assert seen(client, "GET /api/reports/{name}") == {200, 400, 401, 403, 404}


def test_campaign_report_answers(client):
    recipient = seed_recipient(seed_subscriber("reader@example.org", utcnow()), utcnow())
    campaign = recipient.campaign_id
    url = f"/staff/campaigns/{campaign}/report.json"
    client.get(url)  # not signed in: to the sign-in page
    make_user("marketing@amniotic.studio", "marketing")
    assert login(client, "marketing@amniotic.studio").status_code == 302
    data = client.get(url).get_json()
    assert data["campaign_id"] == campaign and data["accepted"] == 1
    client.get(f"/staff/campaigns/{campaign + 1}/report.json")
    client.get("/staff/campaigns/99999999999999999999/report.json")  # no id is that large
    client.post("/staff/logout")
    make_user("analyst@amniotic.studio", "analyst")
    assert login(client, "analyst@amniotic.studio").status_code == 302
    client.get(url)
    assert seen(client, "GET /staff/campaigns/{campaign_id}/report.json") == \
        documented(client, "GET /staff/campaigns/{campaign_id}/report.json")


# -- public JSON of the privacy pages --------------------------------------------------------

def test_register_and_description_answers(client):
    client.get("/privacy/register.json")
    client.get("/privacy/register?format=json")
    client.get("/privacy/register")
    client.get("/api/openapi.json")
    assert seen(client, "GET /privacy/register.json") == {200}
    assert seen(client, "GET /privacy/register") == {200}
    assert seen(client, "GET /api/openapi.json") == {200}


def test_requester_export_answers(database_url, tmp_path, dns_server, smtp_server):
    app = create_app(app_config(database_url, tmp_path, TRACKER_SMTP_URL=smtp_server.url,
                                TRACKER_DNS_SERVERS=[dns_server.address],
                                TRACKER_PUBLIC_URL="http://localhost"))
    with app.app_context():
        client = contract_client(app)
        email = "ana@example.org"
        seed_contact(email, utcnow(), "Bonjour")
        request = rights.open_request("access", email, "", lang="fr", now=utcnow())
        message = smtp_server.inbox.to(email)[-1]
        code = re.search(r"code ?: (\d{6})", message.get_body(("plain",)).get_content())
        rights.verify_code(request.public_id, code.group(1), now=utcnow())
        dpo = make_user("dpo@amniotic.studio", "dpo")
        rights.approve(dpo, request.id, now=utcnow())
        link = next(link for link in mail_links(smtp_server.inbox.to(email)[-1])
                    if "/export?token=" in link)
        export = client.get(link.removeprefix("http://localhost")).get_json()
        assert export["email"] == email and export["contact_messages"][0]["message"] == "Bonjour"
        client.get(f"/privacy/requests/{request.public_id}/export?token=forged")
        assert seen(client, "GET /privacy/requests/{public_id}/export") == {200, 410}
        db.session.remove()
        db.engine.dispose()


# -- requests: what the description forbids, the server refuses ------------------------------

INVALID_BODIES = [
    ("/api/consent", {"choices": {"analytics": True, "location": False, "marketing": False,
                                  "ads": True}, "lang": "fr", "policy_version": "v"}),
    ("/api/consent", {"choices": dict.fromkeys(PURPOSES, "yes"), "lang": "fr",
                      "policy_version": "v"}),
    ("/api/consent", {"choices": dict.fromkeys(PURPOSES, True), "lang": "de",
                      "policy_version": "v"}),
    ("/api/consent", {"choices": dict.fromkeys(PURPOSES, True), "lang": "fr",
                      "policy_version": "v" * (MAX_POLICY_VERSION + 1)}),
    ("/api/consent", {"choices": dict.fromkeys(PURPOSES, True), "lang": "fr",
                      "policy_version": "v", "visitor_id": "ABC"}),
    ("/api/collect", {"type": "click", "url": SITE + "/"}),
    ("/api/collect", {"type": "pageview", "url": SITE + "/" + "a" * MAX_URL}),
    ("/api/collect", {"type": "pageview", "url": "ftp://amniotic.studio/"}),
    ("/api/collect", {"type": "pageview", "url": SITE + "/x\u0000"}),
    ("/api/collect", {"type": "engagement", "url": SITE + "/", "pageview_id": "0" * 32,
                      "engaged_ms": MAX_ENGAGED_MS + 1}),
    ("/api/collect", {"type": "engagement", "url": SITE + "/", "engaged_ms": 5}),
    ("/api/me/export", {"visitor_id": None}),
    ("/api/me/erase", {}),
]


@pytest.mark.parametrize(("path", "body"), INVALID_BODIES)
def test_what_the_description_forbids_is_refused(client, path, body):
    schema = client.contract.find("POST", path)[1]["requestBody"]["content"][
        "application/json"]["schema"]
    validator = jsonschema_rs.validator_for(schema, validate_formats=True)
    assert not validator.is_valid(body)
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert response.get_json()["field"] != "body"  # the field at fault is named
