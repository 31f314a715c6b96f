"""The consent banner's client behaviour, in a real Chromium, with the collector API faked.

A local http.server serves test pages and the real static/consent-banner.js; Playwright's
routing answers /api/* like the collector would and records every request. End-to-end tests
against the real Flask server live elsewhere.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tracker.services.banner import Banner

pytestmark = pytest.mark.browser

BANNER = Path(__file__).resolve().parents[2] / "static" / "consent-banner.js"
HEX32 = re.compile(r"[0-9a-f]{32}")
POLICY = "2026-11-01"

# Test pages by path; each test registers its own page under a unique path.
PAGES: dict[str, str] = {}
# Bodies of beacons that reached the server itself: only requests sent while their page is
# closing escape Playwright's routing (and pages of earlier tests closing late land here too).
ESCAPED: list[dict[str, Any]] = []


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        path = self.path.split("?", 1)[0]
        if path == "/static/consent-banner.js":
            # As the collector serves it: with the current policy version filled in.
            body = Banner.load(BANNER, POLICY).content
            ctype = "text/javascript; charset=utf-8"
        elif path in PAGES:
            body, ctype = PAGES[path].encode(), "text/html; charset=utf-8"
        else:
            # Every other path is the SPA's fallback page, as a real router would serve.
            spa = next((p for p in PAGES if path.startswith(p.rstrip("/") + "/")), None)
            if spa is None:
                self.send_error(404)
                return
            body, ctype = PAGES[spa].encode(), "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/api/collect":
            self.send_error(418)  # the collector is faked by routing
            return
        ESCAPED.append(json.loads(body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


class Collector:
    """Answers the collector API on a page and records what the banner sent."""

    def __init__(self, page: Any, *, fail_consent: bool = False, on: Any = None) -> None:
        self.page = page  # the page whose event loop runs while waiting
        self.fail_consent = fail_consent
        self.requests: list[dict[str, Any]] = []
        self.consent_ids: list[str] = []
        (on or page).route("**/api/**", self._handle)

    def _handle(self, route: Any) -> None:
        req = route.request
        path = re.sub(r"^https?://[^/]+", "", req.url)
        raw = req.post_data or ""
        body = json.loads(raw) if raw else None
        self.requests.append({"path": path, "method": req.method, "body": body,
                              "content_type": req.headers.get("content-type", ""),
                              "url": req.url})
        origin = req.headers.get("origin")
        cors = {"Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true"} if origin else {}
        if path == "/api/consent":
            if self.fail_consent:
                route.fulfill(status=503, headers=cors, body="down")
                return
            cid = secrets.token_hex(16)
            self.consent_ids.append(cid)
            route.fulfill(status=201, content_type="application/json", headers=cors,
                          body=json.dumps({"consent_id": cid,
                                           "expires_at": "2027-05-01T00:00:00Z"}))
        elif path == "/api/collect":
            route.fulfill(status=202, headers=cors, body="")
        elif path == "/api/me/export":
            route.fulfill(status=200, content_type="application/json", headers=cors,
                          body=json.dumps({"visitor_id": body["visitor_id"], "visits": []}))
        elif path == "/api/me/erase":
            route.fulfill(status=200, content_type="application/json", headers=cors,
                          body=json.dumps({"erased": True, "visits": 1}))
        else:
            route.fulfill(status=404, headers=cors, body="")

    def of(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def beacons(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r["body"] for r in self.of("/api/collect")
                if kind is None or r["body"]["type"] == kind]

    def wait(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Let the browser run (route handlers fire during Playwright calls) until true."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; requests so far: {self.requests}")
            self.page.wait_for_timeout(25)

    def settle(self, ms: int = 400) -> None:
        """Give the page time to send anything it (wrongly) might."""
        self.page.wait_for_timeout(ms)


_counter = 0


def make_page(*, lang: str | None = "fr", attrs: str = "", head: str = "", body: str = "",
              title: str = "Accueil") -> str:
    """Register a test page (served with SPA fallback below it) and return its path."""
    global _counter
    _counter += 1
    path = f"/p{_counter}/"
    lang_attr = f' lang="{lang}"' if lang is not None else ""
    PAGES[path] = f"""<!doctype html>
<html{lang_attr}><head><meta charset="utf-8"><title>{title}</title>
<script>
  window.events = [];
  document.addEventListener('amniotic:consent', e => window.events.push(e.detail));
</script>{head}</head>
<body><h1>Studio</h1><button id="first">first</button>
<a href="#" id="own" data-amniotic-consent-open>Cookies</a>
{body}
<script src="/static/consent-banner.js" defer{attrs}></script>
</body></html>"""
    return path


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context()
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


@pytest.fixture
def api(page: Any) -> Collector:
    return Collector(page)


def open_page(page: Any, server: str, path: str) -> None:
    page.goto(server + path)
    page.wait_for_function("document.readyState === 'complete'")


def cookie(context: Any, name: str) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == name), None)


def accept(page: Any, api: Collector) -> dict[str, Any]:
    """Accept all on the banner and return the first pageview beacon."""
    page.click("[data-action=accept]")
    return api.wait(lambda: api.beacons("pageview"))[0]


def hide_page(page: Any) -> None:
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState',
                              {value: 'hidden', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")


def show_page(page: Any) -> None:
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState',
                              {value: 'visible', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")


# ---- display ----

@pytest.mark.parametrize(("lang", "labels"), [
    ("fr", ["Tout accepter", "Tout refuser", "Personnaliser"]),
    ("en", ["Accept all", "Refuse all", "Customize"]),
])
def test_banner_shows_three_equal_buttons(page: Any, api: Collector, server: str,
                                          lang: str, labels: list[str]) -> None:
    open_page(page, server, make_page(lang=lang))
    dialog = page.locator("[role=dialog]")
    assert dialog.is_visible()
    assert dialog.get_attribute("aria-modal") == "false"
    assert page.locator("#" + dialog.get_attribute("aria-labelledby")).is_visible()
    assert page.locator("#" + dialog.get_attribute("aria-describedby")).is_visible()
    buttons = [page.locator(f"[data-action={a}]") for a in ("accept", "refuse", "customize")]
    assert [b.inner_text().strip() for b in buttons] == labels
    assert page.locator("[role=dialog] button:visible").count() == 3
    looks = [b.evaluate("""el => {
        const s = getComputedStyle(el), r = el.getBoundingClientRect();
        return [el.tagName, el.className, Math.round(r.width), Math.round(r.height),
                s.backgroundColor, s.color, s.fontSize, s.fontWeight, s.borderColor];
    }""") for b in buttons]
    assert looks[0] == looks[1] == looks[2], looks
    # The privacy policy is linked; the necessary cookie is mentioned.
    assert page.locator("[role=dialog] a[href='/privacy']").count() == 1
    text = dialog.inner_text()
    assert ("nécessaires" in text) if lang == "fr" else ("Necessary" in text)
    assert page.locator("[data-action=open-settings]").is_hidden()


def test_banner_equal_buttons_on_a_phone(browser: Any, server: str) -> None:
    ctx = browser.new_context(viewport={"width": 360, "height": 640})
    try:
        page = ctx.new_page()
        Collector(page)
        open_page(page, server, make_page(lang="fr"))
        sizes = [page.locator(f"[data-action={a}]").evaluate(
            "el => { const r = el.getBoundingClientRect(); return [r.width, r.height]; }")
            for a in ("accept", "refuse", "customize")]
        assert sizes[0] == sizes[1] == sizes[2], sizes
    finally:
        ctx.close()


def test_language_fallbacks(page: Any, api: Collector, server: str) -> None:
    open_page(page, server, make_page(lang=None))  # no lang: the studio is French
    assert page.locator("[data-action=accept]").inner_text() == "Tout accepter"
    open_page(page, server, make_page(lang="fr-FR", attrs=' data-lang="en"'))
    assert page.locator("[data-action=accept]").inner_text() == "Accept all"
    open_page(page, server, make_page(lang="de", attrs=' data-privacy-url="/datenschutz"'))
    assert page.locator("[data-action=accept]").inner_text() == "Accept all"
    assert page.locator("[role=dialog] a").get_attribute("href") == "/datenschutz"


def test_nothing_is_sent_before_a_decision(page: Any, api: Collector, server: str) -> None:
    path = make_page(body='<script type="text/plain" data-consent="analytics">'
                          'window.gated = 1</script>')
    open_page(page, server, path)
    page.evaluate("history.pushState({}, '', 'next')")
    hide_page(page)
    api.settle(600)
    assert api.requests == []
    assert page.context.cookies() == []
    assert page.evaluate("window.gated") is None
    assert page.evaluate("window.events") == []
    assert page.evaluate("window.amniotic.consent.get()") is None


# ---- decisions ----

def test_refuse_all(page: Any, context: Any, api: Collector, server: str) -> None:
    path = make_page(lang="en")
    open_page(page, server, path)
    page.click("[data-action=refuse]")
    consent = api.wait(lambda: api.of("/api/consent"))[0]
    assert consent["content_type"].startswith("application/json")
    assert consent["body"] == {
        "visitor_id": None,
        "choices": {"analytics": False, "location": False, "marketing": False},
        "policy_version": POLICY, "lang": "en", "method": "refuse_all"}
    api.wait(lambda: cookie(context, "amn_consent"))
    cid, version, flags, issued = cookie(context, "amn_consent").split("|")
    assert cid == api.consent_ids[0] and version == POLICY and flags == "000"
    assert abs(int(issued) - time.time()) < 60
    assert cookie(context, "amn_vid") is None
    assert page.locator("[role=dialog]").is_hidden()
    assert page.locator("[data-action=open-settings]").is_visible()
    page.evaluate("history.pushState({}, '', 'other')")
    hide_page(page)
    api.settle()
    assert api.beacons() == []

    page.reload()
    page.wait_for_function("window.events.length === 1")
    assert page.locator("[role=dialog]").is_hidden()
    assert page.locator("[data-action=open-settings]").is_visible()
    api.settle()
    assert api.beacons() == []
    assert len(api.of("/api/consent")) == 1
    assert page.evaluate("window.amniotic.consent.get()") == {
        "analytics": False, "location": False, "marketing": False}


def test_accept_all_sends_a_pageview(page: Any, context: Any, api: Collector,
                                     server: str) -> None:
    path = make_page(title="Le studio")
    open_page(page, server, path)
    pv = accept(page, api)
    consent = api.of("/api/consent")[0]["body"]
    assert consent["choices"] == {"analytics": True, "location": True, "marketing": True}
    assert consent["method"] == "accept_all" and consent["lang"] == "fr"
    vid = consent["visitor_id"]
    assert HEX32.fullmatch(vid)
    assert cookie(context, "amn_vid") == vid
    assert cookie(context, "amn_consent").split("|")[:3] == [api.consent_ids[0], POLICY, "111"]
    assert pv["type"] == "pageview"
    assert HEX32.fullmatch(pv["event_id"])
    assert pv["visitor_id"] == vid and pv["consent_id"] == api.consent_ids[0]
    assert pv["url"] == server + path and pv["title"] == "Le studio"
    assert pv["referrer"] == ""
    assert "pageview_id" not in pv and "engaged_ms" not in pv
    beacon = api.of("/api/collect")[0]
    assert beacon["content_type"].startswith("text/plain")
    # The consent cookie brings measurement back at the next load, without asking.
    with page.expect_navigation():
        page.evaluate("location.href = 'next?x=1'")
    api.wait(lambda: len(api.beacons("pageview")) == 2)
    pv2 = api.beacons("pageview")[1]
    assert pv2["visitor_id"] == vid and pv2["consent_id"] == api.consent_ids[0]
    assert pv2["referrer"] == server + path  # a real navigation: document.referrer
    assert pv2["event_id"] != pv["event_id"]
    assert len(api.of("/api/consent")) == 1
    assert page.locator("[role=dialog]").is_hidden()


def test_customize_then_save(page: Any, context: Any, api: Collector, server: str) -> None:
    open_page(page, server, make_page())
    page.click("[data-action=customize]")
    switches = page.locator("input[type=checkbox][role=switch]")
    assert switches.count() == 3
    for name in ("analytics", "location", "marketing"):
        assert not page.locator(f"input[name={name}]").is_checked()
    assert page.locator("input[name=location]").is_disabled()  # needs analytics
    assert page.locator("[data-action=customize]").is_hidden()
    assert page.locator("[data-action=export]").is_hidden()  # no visitor id yet
    page.check("input[name=analytics]")
    assert page.locator("input[name=location]").is_enabled()
    page.check("input[name=location]")
    page.uncheck("input[name=analytics]")
    assert not page.locator("input[name=location]").is_checked()
    page.check("input[name=analytics]")
    page.click("[data-action=save]")
    api.wait(lambda: api.beacons("pageview"))
    consent = api.of("/api/consent")[0]["body"]
    assert consent["choices"] == {"analytics": True, "location": False, "marketing": False}
    assert consent["method"] == "custom"
    assert cookie(context, "amn_consent").split("|")[2] == "100"
    # Reopening reflects the current choice.
    page.click("[data-action=open-settings]")
    assert page.locator("input[name=analytics]").is_checked()
    assert not page.locator("input[name=location]").is_checked()
    assert not page.locator("input[name=marketing]").is_checked()
    assert page.locator("[data-action=export]").is_visible()


def test_consent_request_failure_keeps_nothing(page: Any, context: Any, server: str) -> None:
    api = Collector(page, fail_consent=True)
    path = make_page(body='<script type="text/plain" data-consent="marketing">'
                          'window.mk = 1</script>')
    open_page(page, server, path)
    page.click("[data-action=accept]")
    page.wait_for_function("window.events.length === 1")
    # Consent the collector could not record is not acted upon.
    assert page.evaluate("window.events[0]") == {
        "analytics": False, "location": False, "marketing": False, "consent_id": None}
    assert page.evaluate("window.mk") is None
    api.settle()
    assert api.beacons() == []  # no consent_id from the server: no measurement
    assert cookie(context, "amn_consent") is None and cookie(context, "amn_vid") is None
    page.reload()
    assert page.locator("[role=dialog]").is_visible()  # asked again


def test_stale_or_other_policy_asks_again(page: Any, context: Any, api: Collector,
                                          server: str) -> None:
    path = make_page()
    host = server.split("//")[1].split(":")[0]
    cid = secrets.token_hex(16)

    def with_cookie(value: str) -> None:
        context.clear_cookies()
        context.add_cookies([{"name": "amn_consent", "value": value, "domain": host,
                              "path": "/"}])
        open_page(page, server, path)

    with_cookie(f"{cid}|{POLICY}|000|{int(time.time()) - 3600}")
    assert page.locator("[role=dialog]").is_hidden()
    with_cookie(f"{cid}|2025-01-01|000|{int(time.time()) - 3600}")
    assert page.locator("[role=dialog]").is_visible()
    with_cookie(f"{cid}|{POLICY}|000|{int(time.time()) - 183 * 86400}")
    assert page.locator("[role=dialog]").is_visible()
    # Analytics granted but the visitor id is gone: ask again rather than measure blind.
    with_cookie(f"{cid}|{POLICY}|100|{int(time.time()) - 3600}")
    assert page.locator("[role=dialog]").is_visible()
    api.settle()
    assert api.requests == []


def test_server_set_cookies_are_honoured(page: Any, context: Any, api: Collector,
                                         server: str) -> None:
    """Cookies set by the collector (Set-Cookie) are read like the banner's own."""
    host = server.split("//")[1].split(":")[0]
    cid, vid = secrets.token_hex(16), secrets.token_hex(16)
    context.add_cookies([
        {"name": "amn_consent", "value": f"{cid}|{POLICY}|110|{int(time.time())}",
         "domain": host, "path": "/"},
        {"name": "amn_vid", "value": vid, "domain": host, "path": "/"}])
    open_page(page, server, make_page())
    pv = api.wait(lambda: api.beacons("pageview"))[0]
    assert (pv["visitor_id"], pv["consent_id"]) == (vid, cid)
    assert page.evaluate("window.events") == [
        {"analytics": True, "location": True, "marketing": False, "consent_id": cid}]


# ---- measurement ----

def test_spa_navigation_sends_pageviews(page: Any, api: Collector, server: str) -> None:
    path = make_page()
    open_page(page, server, path)
    first = accept(page, api)
    page.wait_for_timeout(150)
    page.evaluate("history.pushState({}, '', 'work?id=2'); document.title = 'Work'")
    api.wait(lambda: len(api.beacons("pageview")) == 2)
    second = api.beacons("pageview")[1]
    assert second["url"] == server + path + "work?id=2"
    assert second["referrer"] == server + path  # the previous page
    left = api.beacons("engagement")
    assert len(left) == 1 and left[0]["pageview_id"] == first["event_id"]
    assert left[0]["engaged_ms"] >= 100 and left[0]["url"] == server + path
    # A hash change or the same path again is not a new page.
    page.evaluate("history.replaceState({}, '', 'work?id=2#top')")
    page.evaluate("history.pushState({}, '', 'work?id=2')")
    api.settle(200)
    assert len(api.beacons("pageview")) == 2
    page.go_back()  # popstate back to the first page (the #top entry is the same page)
    page.go_back()
    api.wait(lambda: len(api.beacons("pageview")) == 3)
    third = api.beacons("pageview")[2]
    assert third["url"] == server + path
    assert third["referrer"] == server + path + "work?id=2"
    ids = [b["event_id"] for b in api.beacons()]
    assert len(set(ids)) == len(ids)


def test_engagement_counts_visible_time(page: Any, api: Collector, server: str) -> None:
    open_page(page, server, make_page())
    pv = accept(page, api)
    page.wait_for_timeout(300)
    hide_page(page)
    eng = api.wait(lambda: api.beacons("engagement"))[0]
    assert eng["pageview_id"] == pv["event_id"]
    assert eng["visitor_id"] == pv["visitor_id"] and eng["consent_id"] == pv["consent_id"]
    assert HEX32.fullmatch(eng["event_id"]) and eng["event_id"] != pv["event_id"]
    assert isinstance(eng["engaged_ms"], int) and 250 <= eng["engaged_ms"] < 5000
    # Hidden time does not count; the value is cumulative for the pageview.
    page.wait_for_timeout(300)
    page.dispatch_event("body", "pagehide")  # nothing new while hidden
    api.settle(100)
    assert len(api.beacons("engagement")) == 1
    show_page(page)
    page.wait_for_timeout(200)
    hide_page(page)
    api.wait(lambda: len(api.beacons("engagement")) == 2)
    later = api.beacons("engagement")[1]
    assert later["pageview_id"] == pv["event_id"]
    assert eng["engaged_ms"] + 150 <= later["engaged_ms"] < eng["engaged_ms"] + 3000


def test_engagement_on_page_close(context: Any, server: str) -> None:
    page, watcher = context.new_page(), context.new_page()
    api = Collector(watcher, on=context)  # the beacon outlives its page
    open_page(page, server, make_page())
    pv = accept(page, api)
    page.wait_for_timeout(200)
    page.close(run_before_unload=True)

    def engagements() -> list[dict[str, Any]]:
        return [b for b in api.beacons("engagement") + ESCAPED
                if b.get("pageview_id") == pv["event_id"]]

    eng = api.wait(engagements)[0]
    assert eng["type"] == "engagement" and 150 <= eng["engaged_ms"] < 5000
    assert eng["visitor_id"] == pv["visitor_id"] and eng["consent_id"] == pv["consent_id"]


def test_withdrawal_via_the_persistent_link(page: Any, context: Any, api: Collector,
                                            server: str) -> None:
    open_page(page, server, make_page())
    accept(page, api)
    vid = cookie(context, "amn_vid")
    fab = page.locator("[data-action=open-settings]")
    assert fab.is_visible() and fab.inner_text() == "Gestion des cookies"
    fab.click()
    assert page.locator("input[name=analytics]").is_checked()
    assert page.locator("input[name=marketing]").is_checked()
    page.click("[data-action=refuse]")
    api.wait(lambda: len(api.of("/api/consent")) == 2)
    withdrawal = api.of("/api/consent")[1]["body"]
    assert withdrawal["visitor_id"] == vid  # so the server can supersede the earlier consent
    assert withdrawal["choices"] == {"analytics": False, "location": False, "marketing": False}
    assert withdrawal["method"] == "refuse_all"
    assert cookie(context, "amn_vid") is None
    api.wait(lambda: (cookie(context, "amn_consent") or "|").split("|")[0] == api.consent_ids[1])
    count = len(api.beacons())
    page.evaluate("history.pushState({}, '', 'elsewhere')")
    hide_page(page)
    page.dispatch_event("body", "pagehide")
    api.settle()
    assert len(api.beacons()) == count
    # Accepting again starts a new visitor id.
    page.click("[data-action=open-settings]")
    page.click("[data-action=accept]")
    api.wait(lambda: len(api.beacons("pageview")) == 2)
    assert api.beacons("pageview")[1]["visitor_id"] not in (None, vid)


def test_page_links_open_the_settings(page: Any, api: Collector, server: str) -> None:
    open_page(page, server, make_page(body='<a href="#x" id="late">late</a>'))
    page.click("[data-action=refuse]")
    api.wait(lambda: api.of("/api/consent"))
    page.click("#own")
    assert page.locator("input[name=analytics]").is_visible()
    assert page.url.endswith("/")  # the "#" link did not navigate
    page.keyboard.press("Escape")
    assert page.locator("[role=dialog]").is_hidden()
    assert page.evaluate("document.activeElement.id") == "own"  # focus given back
    # A link added later works too; so does the JavaScript API.
    page.evaluate("document.getElementById('late').setAttribute("
                  "'data-amniotic-consent-open', '')")
    page.click("#late")
    assert page.locator("input[name=analytics]").is_visible()
    page.keyboard.press("Escape")
    page.evaluate("window.amniotic.consent.open()")
    assert page.locator("input[name=analytics]").is_visible()


# ---- integrations ----

def test_gated_scripts_run_once_granted(page: Any, context: Any, api: Collector,
                                        server: str) -> None:
    path = make_page(body="""
<script type="text/plain" data-consent="marketing" id="mks">window.mk=(window.mk||0)+1</script>
<script type="text/plain" data-consent="analytics">window.an = (window.an||0) + 1</script>
<script type="text/plain" data-consent="location" data-x="1">window.lo = 1</script>""")
    open_page(page, server, path)
    page.click("[data-action=customize]")
    page.check("input[name=analytics]")
    page.click("[data-action=save]")
    page.wait_for_function("window.events.length === 1")
    assert page.evaluate("[window.mk, window.an, window.lo]") == [None, 1, None]
    page.click("[data-action=open-settings]")
    page.click("[data-action=accept]")
    page.wait_for_function("window.events.length === 2")
    assert page.evaluate("[window.mk, window.an, window.lo]") == [1, 1, 1]
    script = page.locator("#mks")
    assert script.get_attribute("type") is None and script.get_attribute("data-consent") is None
    assert page.locator("script[data-x='1']").count() == 1  # other attributes copied
    page.click("[data-action=open-settings]")
    page.click("[data-action=accept]")
    page.wait_for_function("window.events.length === 3")
    assert page.evaluate("[window.mk, window.an, window.lo]") == [1, 1, 1]  # once only
    page.reload()
    page.wait_for_function("window.events.length === 1")
    assert page.evaluate("[window.mk, window.an, window.lo]") == [1, 1, 1]


def test_consent_event_and_google_consent_mode(page: Any, api: Collector,
                                               server: str) -> None:
    path = make_page(head="""<script>
  window.gcalls = [];
  window.gtag = function () { window.gcalls.push([].slice.call(arguments)); };
</script>""")
    open_page(page, server, path)
    assert page.evaluate("window.gcalls") == [["consent", "default", {
        "ad_storage": "denied", "ad_user_data": "denied", "ad_personalization": "denied",
        "analytics_storage": "denied"}]]
    page.click("[data-action=customize]")
    page.check("input[name=marketing]")
    page.click("[data-action=save]")
    page.wait_for_function("window.events.length === 1")
    assert page.evaluate("window.events[0]") == {
        "analytics": False, "location": False, "marketing": True,
        "consent_id": api.consent_ids[0]}
    assert page.evaluate("window.gcalls[1]") == ["consent", "update", {
        "analytics_storage": "denied", "ad_storage": "granted", "ad_user_data": "granted",
        "ad_personalization": "granted"}]
    page.reload()
    page.wait_for_function("window.events.length === 1")
    assert page.evaluate("window.events[0]")["consent_id"] == api.consent_ids[0]
    assert [c[1] for c in page.evaluate("window.gcalls")] == ["default", "update"]


def test_keyboard(page: Any, api: Collector, server: str) -> None:
    open_page(page, server, make_page(lang="en"))
    page.evaluate("window.amniotic.consent.close()")  # no decision yet: stays open
    assert page.locator("[role=dialog]").is_visible()
    # The banner took the focus when it opened.
    assert page.evaluate("document.activeElement.closest('[role=dialog]') !== null") is True
    for _ in range(3):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.action") == "accept":
            break
    assert page.evaluate("document.activeElement.dataset.action") == "accept"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.action") == "refuse"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Customize
    assert page.locator("input[name=analytics]").is_visible()
    page.keyboard.press("Escape")  # no decision yet: the settings stay
    assert page.locator("input[name=analytics]").is_visible()
    page.locator("[data-action=refuse]").focus()
    page.keyboard.press("Enter")
    body = api.wait(lambda: api.of("/api/consent"))[0]["body"]
    assert body["method"] == "refuse_all"
    # Reopen from the persistent button with the keyboard; Escape closes and gives focus back.
    fab = page.locator("[data-action=open-settings]")
    fab.focus()
    page.keyboard.press("Enter")
    assert page.locator("input[name=analytics]").is_visible()
    assert page.evaluate("document.activeElement.closest('[role=dialog]') !== null") is True
    page.keyboard.press("Escape")
    assert page.locator("[role=dialog]").is_hidden()
    assert page.evaluate("document.activeElement.dataset.action") == "open-settings"


def test_global_privacy_control(browser: Any, server: str) -> None:
    ctx = browser.new_context()
    try:
        ctx.add_init_script("Object.defineProperty(Navigator.prototype, "
                            "'globalPrivacyControl', {get: () => true})")
        page = ctx.new_page()
        api = Collector(page)
        open_page(page, server, make_page(body='<script type="text/plain" '
                                               'data-consent="marketing">window.mk=1</script>'))
        page.click("[data-action=customize]")
        marketing = page.locator("input[name=marketing]")
        assert not marketing.is_checked() and marketing.is_disabled()
        assert "Global Privacy Control" in page.locator("[role=dialog]").inner_text()
        page.click("[data-action=accept]")
        api.wait(lambda: api.beacons("pageview"))
        body = api.of("/api/consent")[0]["body"]
        assert body["choices"] == {"analytics": True, "location": True, "marketing": False}
        assert body["method"] == "accept_all"
        assert cookie(ctx, "amn_consent").split("|")[2] == "110"
        assert page.evaluate("window.mk") is None
    finally:
        ctx.close()


def test_export_and_erase(page: Any, context: Any, api: Collector, server: str) -> None:
    open_page(page, server, make_page())
    accept(page, api)
    vid = cookie(context, "amn_vid")
    page.click("[data-action=open-settings]")
    with page.expect_download() as dl:
        page.click("[data-action=export]")
    assert dl.value.suggested_filename == "my-data.json"
    assert json.loads(Path(dl.value.path()).read_text()) == {"visitor_id": vid, "visits": []}
    assert api.of("/api/me/export")[0]["body"] == {"visitor_id": vid}

    page.once("dialog", lambda d: d.dismiss())
    page.click("[data-action=erase]")
    api.settle(200)
    assert api.of("/api/me/erase") == []  # cancelled

    page.once("dialog", lambda d: d.accept())
    page.click("[data-action=erase]")
    api.wait(lambda: api.of("/api/me/erase"))
    assert api.of("/api/me/erase")[0]["body"] == {"visitor_id": vid}
    page.wait_for_function("window.events.length === 2")
    assert page.locator("[role=status]").inner_text() == "Données supprimées."
    assert cookie(context, "amn_vid") is None and cookie(context, "amn_consent") is None
    assert page.evaluate("window.events[1]") == {
        "analytics": False, "location": False, "marketing": False, "consent_id": None}
    assert page.locator("[data-action=export]").is_hidden()
    count = len(api.beacons())
    page.evaluate("history.pushState({}, '', 'after')")
    hide_page(page)
    api.settle()
    assert len(api.beacons()) == count
    page.reload()
    assert page.locator("[role=dialog]").is_visible()


def test_collector_from_data_attribute(page: Any, api: Collector, server: str) -> None:
    open_page(page, server, make_page(attrs=' data-collector="https://collector.test/"'))
    page.click("[data-action=accept]")
    api.wait(lambda: api.beacons("pageview"))
    assert {r["url"].split("/api/")[0] for r in api.requests} == {"https://collector.test"}
