"""Request enrichment: User-Agent parsing, GeoIP, reverse DNS and IP helpers (no Flask)."""

from __future__ import annotations

from tracker.enrich.geoip import GeoIP, Location, Network
from tracker.enrich.netaddr import client_ip, is_public_ip, normalize_ip
from tracker.enrich.rdns import ReverseDNS, registrable_domain
from tracker.enrich.useragent import BrowserInfo, parse_user_agent

__all__ = [
    "BrowserInfo",
    "GeoIP",
    "Location",
    "Network",
    "ReverseDNS",
    "client_ip",
    "is_public_ip",
    "normalize_ip",
    "parse_user_agent",
    "registrable_domain",
]
