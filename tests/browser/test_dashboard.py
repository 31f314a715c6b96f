"""The staff dashboard in Chromium: stored XSS stays text, and a staff member's journey."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import beacon, decide, make_user
from tracker.clock import utcnow
from tracker.services import demo_data, runtime
from tracker.services.reports import REPORTS

pytestmark = pytest.mark.browser

# Payloads in every field that comes from the public internet.
TITLE = '<script>window.__xss="title"</script><img src=x onerror="window.__xss=\'title\'">'
PATH = '/"><img src=x onerror="window.__xss=\'path\'"><script>window.__xss="path"</script>'
REFERRER = 'https://"><svg onload="window.__xss=\'ref\'">.example/<script>x</script>'
UTM = ("?utm_source=<img src=x onerror=window.__xss='utm'>"
       "&utm_campaign=<script>window.__xss='campaign'</script>")
USER_AGENT = ("Mozilla/5.0 (<script>window.__xss='ua'</script>) "
              "<img src=x onerror=window.__xss='ua-img'>")
INJECTED = ("img[src='x'], svg[onload], [onerror], [onload], "
            "script:not([src]):not([type='application/json'])")


def _store_hostile_traffic(live: Any) -> None:
    with live.app.app_context():
        make_user("ana@amniotic.studio", "analyst")
        client = live.app.test_client()
        consent = decide(client, location=True)
        assert beacon(client, consent, path=PATH + UTM, title=TITLE, referrer=REFERRER,
                      user_agent=USER_AGENT).status_code == 202
        assert beacon(client, consent, path="/contact/", title=TITLE,
                      referrer="https://amniotic.studio" + PATH).status_code == 202
        assert runtime.ingest().drain() == 2


def _assert_inert(page: Any, dialogs: list[str], where: str) -> None:
    assert page.evaluate("window.__xss") is None, f"a payload ran on {where}"
    assert dialogs == [], f"a dialog opened on {where}"
    assert page.locator(INJECTED).count() == 0, f"markup was injected on {where}"


def test_stored_xss_is_shown_as_text_on_every_page(browser, live_server):
    _store_hostile_traffic(live_server)
    # Without the CSP's help: escaping alone must keep every payload inert.
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    live_server.login(page, "ana@amniotic.studio")
    base = live_server.url + "/dashboard/"
    urls = [base] + [base + name for name in REPORTS if name != "overview"]
    urls += [base + "flows?" + _query(focus=PATH), base + "flows?by=section",
             base + "pages?" + _query(page=PATH), base + "sources?" + _query(source=REFERRER)]
    for url in urls:
        page.goto(url)
        page.wait_for_load_state("load")
        _assert_inert(page, dialogs, url)
    page.goto(base + "pages")
    text = page.inner_text("main")
    assert TITLE in text and PATH in text
    page.goto(base + "sources")
    assert "<img src=x onerror=window.__xss='utm'>" in page.inner_text("main")
    page.goto(base + "flows?" + _query(focus=PATH))
    assert page.locator("svg.flow text.focus-label").text_content().strip().startswith(PATH[:30])
    _assert_inert(page, dialogs, "the flow diagram")
    context.close()


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def test_staff_journey(browser, live_server, artifacts):
    with live_server.app.app_context():
        make_user("ana@amniotic.studio", "analyst")
        demo_data.generate(runtime.ingest(), days=40, visits=600, now=utcnow(),
                           timezone=live_server.app.config["TRACKER_TIMEZONE"], seed=7)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR",
                                  accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    # CSP violations and script errors are console errors; browsers ask for a favicon.
    page.on("console", lambda m: m.type == "error" and "404" not in m.text
            and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
            and problems.append(f"{r.status} {r.url}"))

    live_server.login(page, "ana@amniotic.studio")
    assert page.url == live_server.url + "/dashboard/"
    assert page.locator(".demo-notice").is_visible()
    page.wait_for_selector(".chart canvas")  # uPlot drew the series
    visitors = page.locator("[data-metric=visitors]").inner_text()
    assert visitors not in ("0", "—")
    page.screenshot(path=str(artifacts / "dashboard-overview.png"), full_page=True)

    # Every report, through the navigation.
    for name in REPORTS:
        slug = "" if name == "overview" else name
        with page.expect_navigation():
            page.locator(f".reports-nav a[href*='/dashboard/{slug}']").first.click()
        assert page.locator("main h1").is_visible()
        assert page.locator(".card").count() > 0, name

    # The date range: a preset, then explicit dates.
    page.goto(live_server.url + "/dashboard/")
    with page.expect_navigation():
        page.click("a.chip:has-text('7 jours')")
    assert "preset=7d" in page.url
    assert page.locator("a.chip.active").inner_text() == "7 jours"
    start, end = page.locator("[data-testid=range]").inner_text().split(" – ")
    page.fill("input[name=from]", "2026-01-01" if start > "2026-01-01" else start)
    with page.expect_navigation():
        page.click(".custom-range button[type=submit]")
    assert page.locator("[data-testid=range]").inner_text().startswith(
        "2026-01-01" if start > "2026-01-01" else start)
    assert "from=" in page.url

    # A filter, by drilling down from a row, then another through the filter form.
    with page.expect_navigation():
        page.click(".reports-nav a[href*='technology']")
    browser_link = page.locator("#table-browsers tbody th a").first
    browser_name = browser_link.inner_text()
    with page.expect_navigation():
        browser_link.click()
    assert page.locator(".chip.filter").inner_text().startswith(f"Navigateur : {browser_name}")
    rows = page.locator("#table-browsers tbody tr")
    assert rows.count() == 1
    page.select_option("#fk", "device")
    page.fill("#fv", "desktop")
    with page.expect_navigation():
        page.click(".add-filter button")
    assert page.locator(".chip.filter").count() == 2
    assert "device=desktop" in page.url and "from=" in page.url  # the range was kept

    # Flows: follow a destination in the diagram.
    page.goto(live_server.url + "/dashboard/flows?preset=30d&focus=/projets/")
    page.wait_for_selector("svg.flow")
    destination = page.locator("svg.flow a").last
    target = destination.text_content().strip().split(" · ")[0]
    with page.expect_navigation():
        destination.click()
    assert page.locator("svg.flow text.focus-label").text_content().strip().startswith(target)
    page.goto(live_server.url + "/dashboard/flows?preset=30d&focus=/projets/")
    page.screenshot(path=str(artifacts / "dashboard-flows.png"), full_page=True)

    # A CSV download.
    page.goto(live_server.url + "/dashboard/pages?preset=30d")
    with page.expect_download() as download:
        page.click("#table-top a:has-text('CSV')")
    path = download.value.path()
    rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    assert rows[0] == ["path", "title", "pageviews", "visitors", "avg_engaged_s"]
    assert len(rows) > 3 and all(r[0].startswith("/") for r in rows[1:])

    # English, then a phone.
    page.goto(live_server.url + "/dashboard/?lang=en")
    assert page.locator("main h1").inner_text() == "Overview"
    assert problems == []
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    live_server.login(small, "ana@amniotic.studio")
    small.wait_for_selector(".chart canvas")
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    small.screenshot(path=str(artifacts / "dashboard-overview-phone.png"), full_page=True)
    phone.close()
    context.close()
