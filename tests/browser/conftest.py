"""A live tracker server and Debian's Chromium driven by Playwright, for browser tests."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.conftest import IN_CI, SITE, app_config
from tests.helpers import KNOWN_IP, PASSWORD
from tracker import create_app
from tracker.extensions import db

CHROMIUM = os.environ.get("TRACKER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/131.0.0.0 Safari/537.36")


class LiveServer:
    """The real app on 127.0.0.1:<free port>, served by werkzeug in a thread.

    The drainer thread is off: tests call `drain()` when they want the spool stored.
    """

    def __init__(self, app: Any, server: Any) -> None:
        self.app = app
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_port}"

    def drain(self) -> int:
        from tracker.services import runtime

        with self.app.app_context():
            return runtime.ingest().drain()

    def query(self, statement: Any) -> list[Any]:
        """Run a SELECT in the app's database and return all rows."""
        with self.app.app_context():
            return list(db.session.execute(statement).all())

    def login(self, page: Any, email: str, password: str = PASSWORD) -> None:
        """Sign in through the real staff form in the browser `page`."""
        page.goto(self.url + "/staff/login")
        page.fill("#email", email)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("button[type=submit]")


@pytest.fixture
def live_config() -> dict[str, Any]:
    """Extra settings of the live app; override in a test module to change them, e.g.
    `{"TRACKER_INGEST_IN_PROCESS": True, "TRACKER_INGEST_INTERVAL": 0.1}`."""
    return {}


@pytest.fixture
def live_server(sqlite_template: Path, tmp_path: Path, dns_server,
                live_config: dict[str, Any]) -> Iterator[LiveServer]:
    database = tmp_path / "live.sqlite3"
    shutil.copy(sqlite_template, database)
    holder: dict[str, Any] = {}
    server = make_server("127.0.0.1", 0, lambda env, start: holder["app"](env, start),
                         threaded=True)
    origin = f"http://127.0.0.1:{server.server_port}"
    # The demo site's pages come from the app itself; helpers' beacons from SITE.
    settings = {"TRACKER_SITE_ORIGINS": [origin, SITE],
                "TRACKER_DNS_SERVERS": [dns_server.address], "TRACKER_PUBLIC_URL": origin}
    app = create_app(app_config(f"sqlite:///{database}", tmp_path,
                                **{**settings, **live_config}))
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveServer(app, server)
    server.shutdown()
    thread.join(5)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium per test session (each test opens its own context)."""
    if not Path(CHROMIUM).exists():
        hint = "install Debian's chromium: apt-get install -y chromium"
        if IN_CI:
            pytest.fail(hint)
        pytest.skip(hint)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def artifacts() -> Path:
    """Where browser tests save screenshots for people to look at (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def visitor(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A visitor's page: desktop Chrome in French, arriving from KNOWN_IP (a public address
    the MaxMind test databases and the test DNS server know, given by a trusted proxy
    header since the browser reaches us over loopback). `page.api_calls` lists the
    (endpoint, body) of each request to the collector's API."""
    live_server.app.config["TRACKER_TRUSTED_PROXIES"] = 1
    context = browser.new_context(user_agent=CHROME, locale="fr-FR", accept_downloads=True,
                                  extra_http_headers={"X-Forwarded-For": KNOWN_IP})
    page = context.new_page()
    page.api_calls = []
    page.on("request", lambda r: "/api/" in r.url and page.api_calls.append(
        (r.url.split("/api/", 1)[1], r.post_data)))
    yield page
    context.close()


def cookie(page: Any, name: str) -> str | None:
    return next((c["value"] for c in page.context.cookies() if c["name"] == name), None)


def wait_for(page: Any, condition: Any, timeout: float = 5.0) -> None:
    """Poll `condition`, letting Playwright dispatch the page's events meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError("condition not met in time")
