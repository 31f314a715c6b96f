"""User-Agent parsing into browser, OS, device class and bot flag."""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

from user_agents import parse as _ua_parse

log = logging.getLogger("tracker.enrich")

# Real browser UAs are well under 512 chars; longer input is junk or an attempt to make
# the regex-heavy parser (and the cache) expensive.
MAX_UA_LENGTH = 512

# Automation clients that ua-parser reports as ordinary browsers or libraries.
_BOT_RE = re.compile(
    r"headlesschrome|phantomjs|curl/|wget/|python-requests|python-urllib|go-http-client",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class BrowserInfo:
    """Parsed, privacy-safe summary of a User-Agent string."""

    browser: str
    browser_version: str
    os: str
    device: str
    is_bot: bool


UNKNOWN = BrowserInfo(browser="Other", browser_version="", os="Other", device="other", is_bot=False)


def _major_minor(version: tuple[object, ...]) -> str:
    """Format a version tuple as "major.minor" (or just "major")."""
    return ".".join(str(part) for part in version[:2])


@functools.lru_cache(maxsize=4096)
def _parse_cached(ua: str) -> BrowserInfo:
    """Parse an already truncated User-Agent string."""
    try:
        parsed = _ua_parse(ua)
        is_bot = bool(parsed.is_bot) or bool(_BOT_RE.search(ua))
        if is_bot:
            device = "bot"
        elif parsed.is_tablet:
            device = "tablet"
        elif parsed.is_mobile:
            device = "mobile"
        elif parsed.is_pc:
            device = "desktop"
        else:
            device = "other"
        # Clipped to the columns that store them (visits.browser, .browser_version, .os).
        return BrowserInfo(
            browser=_clean(parsed.browser.family, 50) or "Other",
            browser_version=_clean(_major_minor(parsed.browser.version), 20),
            os=_clean(parsed.os.family, 50) or "Other",
            device=device,
            is_bot=is_bot,
        )
    except Exception:
        # Enrichment must never break ingest; an unparseable UA is just "Other". The string
        # itself is not logged: it is personal data.
        log.debug("could not parse a User-Agent", exc_info=True)
        return UNKNOWN


def _clean(value: str | None, limit: int) -> str:
    return (value or "").replace("\x00", "")[:limit]


def parse_user_agent(ua: str) -> BrowserInfo:
    """Parse a User-Agent header (cached; never raises)."""
    if not isinstance(ua, str):
        return UNKNOWN
    # Truncate before the cache so hostile 100 KB headers are neither parsed nor kept as keys.
    return _parse_cached(ua[:MAX_UA_LENGTH])


parse_user_agent.cache_info = _parse_cached.cache_info  # type: ignore[attr-defined]
parse_user_agent.cache_clear = _parse_cached.cache_clear  # type: ignore[attr-defined]
