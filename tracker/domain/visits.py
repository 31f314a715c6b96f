"""Pure rules about pages and visits: URL splitting, sections, sources, sessionization."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

MAX_PATH = 512
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")
HOME_SECTION = "home"


@dataclass(frozen=True, slots=True)
class PageUrl:
    origin: str
    path: str
    utm: dict[str, str]


def split_url(url: str) -> PageUrl | None:
    """Split a page URL into its origin, path (no query or fragment) and UTM parameters."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    path = (parts.path or "/")[:MAX_PATH]
    # NUL never reaches storage (PostgreSQL refuses it); a value left empty is no value.
    utm = {k: clean for k, v in parse_qsl(parts.query)
           if k in UTM_KEYS and (clean := v.replace("\x00", "")[:100])}
    return PageUrl(origin=origin, path=path, utm=utm)


def referrer_domain(referrer: str, own_origin: str) -> str | None:
    """The referring host without `www.`, or None for direct and internal traffic.

    Internal means the page's own host with or without `www.`, whatever the scheme or port:
    a visitor who followed a link from www.amniotic.studio to amniotic.studio did not come
    from another site.
    """
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer)
        host = parts.hostname
    except ValueError:
        return None
    if not host or parts.scheme not in ("http", "https"):
        return None
    # urlsplit lowercases the host but not what follows a `%` (an IPv6 zone id, or junk).
    domain = host.lower().removeprefix("www.")
    if domain == (urlsplit(own_origin).hostname or "").removeprefix("www."):
        return None
    return domain[:253]


@dataclass(frozen=True, slots=True)
class SectionRule:
    """A path prefix (`/projets/`) or regular expression (`re:^/blog/\\d+`) naming a section."""

    pattern: str
    section: str

    def matches(self, path: str) -> bool:
        if self.pattern.startswith("re:"):
            return re.search(self.pattern[3:], path) is not None
        return path.startswith(self.pattern)


def section_of(path: str, rules: Sequence[SectionRule] = ()) -> str:
    """The first matching rule's section, else the first path segment (`home` for `/`)."""
    for rule in rules:
        if rule.matches(path):
            return rule.section
    first = path.strip("/").split("/", 1)[0]
    return first[:64] if first else HOME_SECTION


def continues_visit(last_seen_at: datetime, at: datetime, timeout: timedelta) -> bool:
    """True when an event at `at` belongs to the visit last active at `last_seen_at`.

    Events a little out of order (earlier than the last one seen) stay in the visit.
    """
    return at - last_seen_at < timeout
