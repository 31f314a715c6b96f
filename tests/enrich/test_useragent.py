"""Tests for User-Agent parsing against real browser, bot and hostile strings."""

from __future__ import annotations

import pytest

from tracker.enrich.useragent import BrowserInfo, parse_user_agent

UNKNOWN = BrowserInfo("Other", "", "Other", "other", False)

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        pytest.param(
            CHROME_WINDOWS, BrowserInfo("Chrome", "120.0", "Windows", "desktop", False), id="chrome"
        ),
        pytest.param(
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            BrowserInfo("Firefox", "121.0", "Linux", "desktop", False),
            id="firefox-linux",
        ),
        pytest.param(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.1 Safari/605.1.15",
            BrowserInfo("Safari", "17.1", "Mac OS X", "desktop", False),
            id="safari-mac",
        ),
        pytest.param(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
            BrowserInfo("Mobile Safari", "17.1", "iOS", "mobile", False),
            id="iphone",
        ),
        pytest.param(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
            BrowserInfo("Chrome Mobile", "120.0", "Android", "mobile", False),
            id="android",
        ),
        pytest.param(
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            BrowserInfo("Mobile Safari", "16.6", "iOS", "tablet", False),
            id="ipad",
        ),
        pytest.param(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            BrowserInfo("Googlebot", "2.1", "Other", "bot", True),
            id="googlebot",
        ),
        pytest.param(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) HeadlessChrome/120.0.6099.109 Safari/537.36",
            BrowserInfo("HeadlessChrome", "120.0", "Windows", "bot", True),
            id="headless-chrome",
        ),
        pytest.param("curl/8.4.0", BrowserInfo("curl", "8.4", "Other", "bot", True), id="curl"),
        pytest.param("Wget/1.21.4", BrowserInfo("Wget", "1.21", "Other", "bot", True), id="wget"),
        pytest.param(
            "python-requests/2.31.0",
            BrowserInfo("Python Requests", "2.31", "Other", "bot", True),
            id="python-requests",
        ),
        pytest.param(
            "Go-http-client/1.1",
            BrowserInfo("Go-http-client", "1.1", "Other", "bot", True),
            id="go",
        ),
        pytest.param("", UNKNOWN, id="empty"),
        pytest.param("\x00\ud800 garbage ;;(", UNKNOWN, id="garbage"),
        pytest.param("x" * 100_000, UNKNOWN, id="100kb"),
    ],
)
def test_parse_user_agent(ua: str, expected: BrowserInfo) -> None:
    assert parse_user_agent(ua) == expected


def test_long_input_is_truncated_before_parsing() -> None:
    # The tail beyond 512 characters must not influence the result (or the cache key).
    padded = CHROME_WINDOWS + " " * (600 - len(CHROME_WINDOWS)) + "Googlebot/2.1"
    assert parse_user_agent(padded).browser == "Chrome"
    assert not parse_user_agent(padded).is_bot


def test_non_string_input_does_not_raise() -> None:
    assert parse_user_agent(None).browser == "Other"  # type: ignore[arg-type]


def test_results_are_cached() -> None:
    ua = CHROME_WINDOWS + " cache-test"
    first = parse_user_agent(ua)
    hits = parse_user_agent.cache_info().hits
    assert parse_user_agent(ua) is first
    assert parse_user_agent.cache_info().hits == hits + 1
