"""A realistic, reproducible mix of visitors, pages, browsers, networks and referrers."""

from __future__ import annotations

import ipaddress
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

SITE = "https://amniotic.studio"

AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
)
# Chrome and Safari dominate; bots are a small share.
AGENT_WEIGHTS = (30, 14, 8, 6, 8, 16, 10, 3, 3, 6, 1, 1)

SECTIONS = {
    "/": ["Amniotic, studio de design"],
    "/projets/": ["Projets"],
    "/studio/": ["Le studio"],
    "/contact": ["Contact"],
    "/journal/": ["Journal"],
}
SLUGS = ("identite-tannerie", "affiche-festival", "site-porcelaine", "edition-limoges",
         "packaging-cafe", "signaletique-musee", "typographie-vienne", "catalogue-cuir",
         "motion-ville", "charte-cooperative", "livre-photo", "exposition-emaux")
REFERRERS = ("", "", "", "", "https://www.google.com/", "https://www.google.fr/",
             "https://duckduckgo.com/", "https://www.bing.com/", "https://www.instagram.com/",
             "https://www.linkedin.com/", "https://www.behance.net/amniotic",
             "https://amniotic.studio/projets/")

# Ranges present in MaxMind's test databases (tests/data/geoip), so enrichment finds
# organisations and places, mixed with addresses it knows nothing about.
# IPv6 clients are counted per /64 by the rate limits, as ISPs hand out /64s: the IPv6
# visitors are spread over many /64s.
NETWORKS = ("1.128.0.0/16", "12.81.92.0/22", "89.160.0.0/17", "216.160.83.56/29",
            "81.2.69.142/31", "149.101.100.0/28", "2001:218::/32", "2600:6000::/24",
            "67.43.156.0/24", "175.16.199.0/24", "2.125.160.216/29", "214.78.120.0/24",
            "5.0.0.0/16", "50.114.0.0/16")


def pages() -> list[tuple[str, str]]:
    """Paths with titles, repeated by popularity (a long tail of project pages)."""
    weighted: list[tuple[str, str]] = []
    for path, (title,) in SECTIONS.items():
        weighted += [(path, title)] * {"/": 30, "/projets/": 20}.get(path, 8)
    for rank, slug in enumerate(SLUGS, 1):
        weighted += [(f"/projets/{slug}", f"Projet {slug.replace('-', ' ')}")] * (13 - rank)
        weighted += [(f"/journal/{slug}-notes", f"Journal : {slug.replace('-', ' ')}")]
    return weighted


@dataclass(frozen=True)
class Visitor:
    consent_id: str
    visitor_id: str
    ip: str
    agent: int  # 1-based index into AGENTS (Lua arrays)
    location: bool


def visitors(count: int, seed: int = 6) -> list[Visitor]:
    """`count` visitors with a live consent each (some granting location), a UA and an IP
    address of their own (the collector limits beacons per address, as it should)."""
    rng = random.Random(seed)
    networks = [ipaddress.ip_network(n) for n in NETWORKS]
    roomy = [n for n in networks if n.num_addresses >= 4096]
    used: set[str] = set()
    result = []
    for _ in range(count):
        network = rng.choice(networks)
        ip = str(network[rng.randrange(network.num_addresses)])
        while ip in used:  # small test ranges fill up: move to a large one
            network = rng.choice(roomy)
            ip = str(network[rng.randrange(network.num_addresses)])
        used.add(ip)
        agent = rng.choices(range(1, len(AGENTS) + 1), AGENT_WEIGHTS)[0]
        result.append(Visitor(secrets.token_hex(16), secrets.token_hex(16), ip, agent,
                              rng.random() < 0.3))
    return result


def ptr_names(people: list[Visitor]) -> dict[str, str]:
    """Reverse-DNS names for about two thirds of the addresses (the rest: NXDOMAIN)."""
    names = {}
    for number, person in enumerate(people):
        if number % 3:
            label = person.ip.replace(".", "-").replace(":", "-")
            names[person.ip] = f"host-{label}.isp{number % 7}.example.net"
    return names


def consent_rows(people: list[Visitor], banner_sha256: str, policy_version: str,
                 now: datetime) -> Iterator[dict[str, object]]:
    """Rows of the consents table granting analytics to each visitor."""
    from tracker.domain.consent import CONSENT_LIFETIME

    for person in people:
        yield {"id": person.consent_id, "visitor_id": person.visitor_id, "analytics": True,
               "location": person.location, "marketing": False, "method": "custom",
               "policy_version": policy_version, "lang": "fr", "banner_sha256": banner_sha256,
               "created_at": now, "expires_at": now + CONSENT_LIFETIME, "withdrawn_at": None}
