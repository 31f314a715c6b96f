"""Reverse DNS (PTR) lookups with a TTL cache, and registrable-domain extraction."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import dns.resolver
import dns.reversename

from tracker.enrich.netaddr import normalize_ip

log = logging.getLogger("tracker.enrich")


def _parse_server(item: str) -> tuple[str, int]:
    """Split "ip", "ip:port" or "[ipv6]:port" into (ip, port); raise ValueError if malformed."""
    text = item.strip()
    port = "53"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid DNS server {item!r}")
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text  # IPv4, or a bare IPv6 address without a port
    try:
        ipaddress.ip_address(host)
        port_num = int(port)
    except ValueError:
        raise ValueError(f"invalid DNS server {item!r}: expected ip or ip:port") from None
    if not 0 < port_num < 65536:
        raise ValueError(f"invalid DNS server {item!r}: port out of range")
    return host, port_num


class ReverseDNS:
    """Thread-safe PTR resolver with a bounded positive/negative TTL cache."""

    def __init__(
        self,
        servers: list[str] | None = None,
        timeout: float = 1.0,
        cache_size: int = 10000,
        cache_ttl: float = 3600.0,
    ) -> None:
        """Configure the resolver; raise ValueError for a malformed server entry."""
        self.timeout = timeout
        self.cache_size = cache_size
        self.cache_ttl = cache_ttl
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._resolver: dns.resolver.Resolver | None
        if servers:
            parsed = [_parse_server(s) for s in servers]
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [host for host, _ in parsed]
            resolver.nameserver_ports = {host: port for host, port in parsed}
            self._resolver = resolver
        else:
            try:
                self._resolver = dns.resolver.Resolver()
            except Exception as exc:
                # No usable /etc/resolv.conf: hostnames are optional, so keep running.
                log.warning("no system DNS resolver (%s): reverse DNS disabled", exc)
                self._resolver = None

    def lookup(self, ip: str) -> str | None:
        """Return the lowercased PTR name of ip without trailing dot, or None."""
        key = normalize_ip(ip)
        resolver = self._resolver
        if key is None or resolver is None:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(key)
                return hit[1]
        name = self._query(resolver, key)
        with self._lock:
            # Failures (timeouts included) are cached too: an unreachable DNS server must
            # not cost every request from that address a full timeout.
            self._cache[key] = (time.monotonic() + self.cache_ttl, name)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return name

    def _query(self, resolver: dns.resolver.Resolver, ip: str) -> str | None:
        """Send one PTR query; None on any failure."""
        try:
            answer = resolver.resolve(
                dns.reversename.from_address(ip), "PTR", lifetime=self.timeout
            )
        except Exception as exc:
            log.debug("reverse DNS for %s failed: %s", ip, exc)
            return None
        for rdata in answer:
            name = rdata.target.to_text(omit_final_dot=True).lower()
            if name:
                return name
        return None

    def lookup_many(self, ips: Iterable[str], max_workers: int = 8) -> dict[str, str | None]:
        """Resolve many addresses concurrently; returns a result for every input."""
        keys = {ip: normalize_ip(ip) for ip in ips}
        distinct = [k for k in dict.fromkeys(keys.values()) if k is not None]
        if len(distinct) <= 1:
            names = {k: self.lookup(k) for k in distinct}
        else:
            # Lookups are I/O bound, so threads let N slow answers overlap into ~one timeout.
            workers = max(1, min(max_workers, len(distinct)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                names = dict(zip(distinct, pool.map(self.lookup, distinct), strict=True))
        return {ip: None if k is None else names[k] for ip, k in keys.items()}


# Multi-label public suffixes under which names are registered one level deeper: a small
# embedded subset of the Public Suffix List covering the ISPs seen in practice, so that no
# download or extra dependency is needed.
_SUFFIX_GROUPS = (
    "co.uk org.uk ac.uk gov.uk me.uk net.uk ltd.uk plc.uk sch.uk nhs.uk police.uk",
    "com.au net.au org.au edu.au gov.au asn.au id.au co.nz net.nz org.nz ac.nz govt.nz",
    "co.jp ne.jp or.jp ac.jp ad.jp go.jp gr.jp ed.jp lg.jp co.kr ne.kr or.kr go.kr ac.kr",
    "com.cn net.cn org.cn gov.cn edu.cn ac.cn com.hk net.hk org.hk",
    "com.tw net.tw org.tw edu.tw idv.tw com.sg net.sg org.sg com.my net.my",
    "co.th in.th co.id net.id or.id com.vn net.vn com.ph net.ph com.pk net.pk",
    "co.in net.in org.in ac.in gov.in",
    "com.br net.br org.br gov.br edu.br com.ar net.ar com.mx net.mx com.co net.co",
    "com.pe com.ve com.uy com.ec",
    "co.za org.za net.za ac.za gov.za com.eg com.ng co.ke",
    "co.il net.il org.il ac.il com.tr net.tr org.tr gen.tr com.sa net.sa com.ua net.ua",
    "gouv.fr asso.fr nom.fr com.fr com.pl net.pl org.pl com.es org.es nom.es",
    "com.pt com.gr com.cy com.mt co.at or.at com.ru net.ru org.ru spb.ru msk.ru",
)
_MULTI_LABEL_SUFFIXES = frozenset(s for group in _SUFFIX_GROUPS for s in group.split())


def registrable_domain(hostname: str | None) -> str | None:
    """Return the registrable domain of hostname ("a.b.example.co.uk" -> "example.co.uk")."""
    if not hostname:
        return None
    name = hostname.strip().rstrip(".").lower()
    if normalize_ip(name) is not None:
        return None
    labels = name.split(".")
    if len(labels) < 2 or not all(labels):
        return None
    depth = 3 if ".".join(labels[-2:]) in _MULTI_LABEL_SUFFIXES else 2
    if len(labels) < depth:
        return None  # the name is itself a public suffix, e.g. "co.uk"
    return ".".join(labels[-depth:])
