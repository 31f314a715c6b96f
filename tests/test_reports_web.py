"""The dashboard pages and the reports API: access by role, parameters, JSON, CSV, escaping."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from tests.helpers import Traffic, beacon, decide, login, make_user
from tracker.clock import utcnow
from tracker.domain.roles import REPORT_READERS, ROLES
from tracker.extensions import db
from tracker.models import Visit
from tracker.services import runtime, staff
from tracker.services.reports import REPORTS

PAGES = ["/dashboard/"] + [f"/dashboard/{name}" for name in REPORTS if name != "overview"]
APIS = [f"/api/reports/{name}" for name in REPORTS]
HOSTILE_TITLE = "=HYPERLINK(\"http://evil.example\")<script>alert(1)</script>"


@pytest.fixture
def traffic(app):
    """A few visits of today, so every report has rows."""
    t = Traffic()
    now = utcnow()
    for n in range(3):
        who = t.visitor(now - timedelta(hours=2), location=True)
        t.visit(who, now - timedelta(hours=1, minutes=n * 5),
                [("/", 0, 12_000), ("/projets/", 30, 40_000), ("/contact/", 90, 5_000)],
                referrer="https://www.google.fr/", title=HOSTILE_TITLE)
    t.store()


def test_each_role_gets_exactly_the_report_pages_it_should(client, traffic):
    for role in sorted(ROLES):
        make_user(f"{role}@amniotic.studio", role)
        assert login(client, f"{role}@amniotic.studio").status_code == 302
        expected = 200 if role in REPORT_READERS else 403
        for url in PAGES + APIS + [APIS[0] + "?format=csv"]:
            assert client.get(url).status_code == expected, (role, url)
        client.delete_cookie("session")  # the next role signs in afresh


def test_anonymous_is_sent_to_sign_in_or_refused(client):
    for url in PAGES:
        response = client.get(url + "?preset=7d")
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/staff/login?next=")
    for url in APIS:
        response = client.get(url)
        assert response.status_code == 401
        assert response.get_json()["error"] == "unauthorized"


def test_sign_in_lands_on_the_dashboard(client):
    make_user("ana@amniotic.studio", "analyst")
    response = login(client, "ana@amniotic.studio")
    assert response.headers["Location"] == "/dashboard/"


def test_api_token_reads_json_and_csv(client, traffic):
    user = make_user("ana@amniotic.studio", "analyst")
    token = staff.create_token(user, "ci", now=utcnow())
    headers = {"Authorization": f"Bearer {token}"}
    data = client.get("/api/reports/pages?preset=7d", headers=headers).get_json()
    assert data["report"] == "pages" and data["timezone"] == "Europe/Paris"
    top = {row["path"]: row["pageviews"] for row in data["tables"]["top"]["rows"]}
    assert top == {"/": 3, "/projets/": 3, "/contact/": 3}
    response = client.get("/api/reports/pages?preset=7d&format=csv&table=entry",
                          headers=headers)
    assert response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert re.fullmatch(r'attachment; filename="pages-entry-\d{4}-\d\d-\d\d-\d{4}-\d\d-\d\d'
                        r'\.csv"', response.headers["Content-Disposition"])
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [["path", "entries", "visitors", "bounce_rate", "avg_visit_duration_s"],
                    ["/", "3", "3", "0.0", "95.0"]]
    assert client.get("/api/reports/pages", headers={"Authorization": "Bearer nope"}) \
        .status_code == 401


def test_csv_cells_cannot_become_spreadsheet_formulas(client, traffic):
    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    text = client.get("/api/reports/pages?preset=7d&format=csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text)))
    titles = {row[1] for row in rows[1:]}
    assert titles == {"'" + HOSTILE_TITLE}


BAD_PARAMETERS = [
    ("from=2026-02-30", "from"), ("from=2026-03-02&to=2026-03-01", "to"),
    ("preset=forever", "preset"), ("granularity=minute", "granularity"),
    ("country=France", "country"), ("format=xml", "format"), ("table=nope&format=csv", "table"),
    ("limit=0", "limit"), ("by=visitor", "by"),
]


def test_bad_parameters_are_named(client):
    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    for query, field in BAD_PARAMETERS:
        response = client.get(f"/api/reports/overview?{query}")
        assert response.status_code == 400, query
        assert response.get_json()["field"] == field, query
        if field not in ("format", "table"):  # pages have no format or table parameter
            # The page shows the default range and says what was wrong instead of failing.
            page = client.get(f"/dashboard/?{query}")
            assert page.status_code == 200
            assert f'role="alert">{field} :' in page.get_data(as_text=True), query


def test_unknown_report(client):
    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    assert client.get("/api/reports/visitors").status_code == 404
    assert client.get("/api/reports/visitors").get_json()["error"] == "not_found"
    assert client.get("/dashboard/visitors").status_code == 404


class _Scripts(HTMLParser):
    """Collects what a Content-Security-Policy without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.inline.append("<script> without src")
        self.inline += [f"{tag}[{n}]" for n in names if n.startswith("on") or n == "style"]
        if any((v or "").strip().lower().startswith("javascript:") for v in names.values()):
            self.inline.append(f"{tag} javascript: URL")


def test_pages_carry_no_inline_script_and_escape_everything(client, app):
    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    consent = decide(client, location=True)
    payload = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    beacon(client, consent, path="/" + payload, title=payload, referrer="https://x.example/",
           user_agent="Mozilla/5.0 " + payload)
    beacon(client, consent, path="/projets/", title=payload, referrer="https://x.example/")
    assert runtime.ingest().drain() == 2
    urls = [(url, {}) for url in PAGES] + [
        ("/dashboard/flows", {"focus": "/" + payload}), ("/dashboard/flows", {"by": "section"}),
        ("/dashboard/pages", {"page": "/" + payload}), ("/dashboard/", {"browser": payload})]
    for url, params in urls:
        response = client.get(url, query_string=params)
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        parser = _Scripts()
        parser.feed(html)
        assert parser.inline == [], url
        assert "<img src=x" not in html and "<script>alert" not in html, url
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    pages = client.get("/dashboard/pages").get_data(as_text=True)
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in pages


def test_pages_name_no_individual(client, traffic):
    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    identifying = set()
    for v in db.session.execute(select(Visit.__table__)).all():
        identifying |= {v.ip, v.visitor_id, v.dns_name}
    identifying.discard(None)
    assert identifying
    for url in PAGES + APIS:
        text = client.get(url).get_data(as_text=True)
        assert not [s for s in identifying if s in text], url


def test_filters_drill_down_and_chips(client, traffic):
    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    html = client.get("/dashboard/technology?preset=7d").get_data(as_text=True)
    assert 'href="/dashboard/technology?preset=7d&amp;browser=Firefox"' in html
    # The "add a filter" form names the filter and its value; the page redirects to it.
    response = client.get("/dashboard/sources?preset=7d&fk=device&fv=desktop")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard/sources?preset=7d&device=desktop"
    html = client.get("/dashboard/?preset=7d&device=mobile&lang=en").get_data(as_text=True)
    assert 'class="chip filter"' in html and "Device" in html
    assert 'data-metric="visits">0<' in html


def test_language_follows_the_choice_then_sticks(client, traffic):
    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    assert "<h1>Vue d&#39;ensemble</h1>" in client.get("/dashboard/").get_data(as_text=True)
    assert "<h1>Overview</h1>" in client.get("/dashboard/?lang=en").get_data(as_text=True)
    assert "<h1>Consent</h1>" in client.get("/dashboard/consent").get_data(as_text=True)
    html = client.get("/dashboard/locations").get_data(as_text=True)
    assert "Only visits whose visitor agreed to location are counted" in html
    assert "<h1>Vue d&#39;ensemble</h1>" in client.get("/dashboard/?lang=fr").get_data(
        as_text=True)


def test_demo_notice_only_with_demo_data(client, app):
    from tracker.services import demo_data

    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    assert "demo-notice" not in client.get("/dashboard/").get_data(as_text=True)
    demo_data.generate(runtime.ingest(), days=2, visits=20, now=utcnow(),
                       timezone="Europe/Paris")
    assert "demo-notice" in client.get("/dashboard/").get_data(as_text=True)


def test_overview_shows_the_retention_job_status(client):
    from tests.helpers import login, make_user

    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    page = client.get("/dashboard/").get_data(as_text=True)
    assert 'id="retention-status"' in page
    assert 'role="alert"' in page.split('id="retention-status"', 1)[1]  # never ran: warned
