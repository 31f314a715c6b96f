"""Tests for reverse DNS against real loopback DNS servers, and registrable_domain."""

from __future__ import annotations

import time

import pytest

from tests.support.dns import RunningDNS, SilentDNS
from tracker.enrich.rdns import ReverseDNS, registrable_domain


def test_resolves_ipv4_ptr(dns_server: RunningDNS) -> None:
    rdns = ReverseDNS([dns_server.address])
    assert rdns.lookup("89.160.20.112") == "host-89-160-20-112.bredband2.se"
    assert dns_server.queries == ["112.20.160.89.in-addr.arpa."]


def test_resolves_ipv6_ptr(dns_server: RunningDNS) -> None:
    rdns = ReverseDNS([dns_server.address])
    assert rdns.lookup("2001:db8::1") == "v6.example.org"
    [qname] = dns_server.queries
    assert qname.endswith(".8.b.d.0.1.0.0.2.ip6.arpa.")


def test_name_is_lowercased(dns_server: RunningDNS) -> None:
    assert ReverseDNS([dns_server.address]).lookup("192.0.2.7") == "mixed-case.example.net"


def test_nxdomain_is_none(dns_server: RunningDNS) -> None:
    assert ReverseDNS([dns_server.address]).lookup("198.51.100.1") is None
    assert len(dns_server.queries) == 1


def test_positive_answers_are_cached(dns_server: RunningDNS) -> None:
    rdns = ReverseDNS([dns_server.address])
    assert rdns.lookup("89.160.20.112") == "host-89-160-20-112.bredband2.se"
    # Another spelling of the same address hits the same cache entry.
    assert rdns.lookup("::ffff:89.160.20.112") == "host-89-160-20-112.bredband2.se"
    assert len(dns_server.queries) == 1


def test_negative_answers_are_cached(dns_server: RunningDNS) -> None:
    rdns = ReverseDNS([dns_server.address])
    assert rdns.lookup("198.51.100.1") is None
    assert rdns.lookup("198.51.100.1") is None
    assert len(dns_server.queries) == 1


def test_cache_entries_expire(dns_server: RunningDNS) -> None:
    rdns = ReverseDNS([dns_server.address], cache_ttl=0.05)
    rdns.lookup("89.160.20.112")
    time.sleep(0.1)
    assert rdns.lookup("89.160.20.112") == "host-89-160-20-112.bredband2.se"
    assert len(dns_server.queries) == 2


def test_cache_is_bounded(dns_server: RunningDNS) -> None:
    rdns = ReverseDNS([dns_server.address], cache_size=2)
    for ip in ["89.160.20.112", "2001:db8::1", "198.51.100.1"]:
        rdns.lookup(ip)
    rdns.lookup("89.160.20.112")  # evicted as the least recently used entry
    rdns.lookup("198.51.100.1")  # still cached
    assert len(dns_server.queries) == 4


@pytest.mark.parametrize("ip", ["", "not-an-ip", "89.160.20", "\x00", "host.example.org"])
def test_invalid_ip_sends_no_query(dns_server: RunningDNS, ip: str) -> None:
    assert ReverseDNS([dns_server.address]).lookup(ip) is None
    assert dns_server.queries == []


def test_server_with_ipv6_bracket_syntax(dns_server: RunningDNS) -> None:
    # Both entry forms parse; the first (working) server answers.
    port = dns_server.address.rsplit(":", 1)[1]
    rdns = ReverseDNS([f"127.0.0.1:{port}", "[::1]:53"])
    assert rdns.lookup("89.160.20.112") == "host-89-160-20-112.bredband2.se"


@pytest.mark.parametrize("server", ["", "nonsense", "1.2.3.4:dns", "1.2.3.4:0", "[::1", "[::1]x"])
def test_malformed_server_is_rejected(server: str) -> None:
    with pytest.raises(ValueError, match="invalid DNS server"):
        ReverseDNS([server])


def test_silent_server_times_out(silent_dns_server: SilentDNS) -> None:
    rdns = ReverseDNS([silent_dns_server.address], timeout=0.5)
    start = time.monotonic()
    assert rdns.lookup("89.160.20.112") is None
    assert time.monotonic() - start < 0.5 + 0.5
    assert silent_dns_server.received >= 1
    # The timeout is cached as a negative answer, so the retry is instant.
    start = time.monotonic()
    assert rdns.lookup("89.160.20.112") is None
    assert time.monotonic() - start < 0.1


def test_lookup_many_is_concurrent(silent_dns_server: SilentDNS) -> None:
    rdns = ReverseDNS([silent_dns_server.address], timeout=0.5)
    ips = [f"198.51.100.{i}" for i in range(1, 11)]
    start = time.monotonic()
    result = rdns.lookup_many(ips)
    elapsed = time.monotonic() - start
    assert result == dict.fromkeys(ips)
    # Sequential lookups would take 10 x 0.5 s; eight workers need two rounds.
    assert elapsed < 2.0


def test_lookup_many_maps_every_input(dns_server: RunningDNS) -> None:
    rdns = ReverseDNS([dns_server.address])
    ips = ["89.160.20.112", "::ffff:89.160.20.112", "2001:db8::1", "198.51.100.1", "junk"]
    assert rdns.lookup_many(ips) == {
        "89.160.20.112": "host-89-160-20-112.bredband2.se",
        "::ffff:89.160.20.112": "host-89-160-20-112.bredband2.se",
        "2001:db8::1": "v6.example.org",
        "198.51.100.1": None,
        "junk": None,
    }
    assert len(dns_server.queries) == 3
    assert rdns.lookup_many([]) == {}


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("lns-bzn-39-82-255-1-1.adsl.proxad.net", "proxad.net"),
        ("abo.wanadoo.fr", "wanadoo.fr"),
        ("x.y.example.co.uk", "example.co.uk"),
        ("host-89-160-20-112.bredband2.se", "bredband2.se"),
        ("cpe-1-2-3-4.nsw.bigpond.net.au", "bigpond.net.au"),
        ("p1234-ipngn.tokyo.ocn.ne.jp", "ocn.ne.jp"),
        ("a.b.c.virtua.com.br", "virtua.com.br"),
        ("www.interieur.gouv.fr", "interieur.gouv.fr"),
        ("Mail.Example.COM.", "example.com"),
        ("example.com", "example.com"),
        ("example.co.uk", "example.co.uk"),
        ("co.uk", None),
        ("localhost", None),
        ("a..example.com", None),
        ("89.160.20.112", None),
        ("2001:db8::1", None),
        ("", None),
        (None, None),
    ],
)
def test_registrable_domain(hostname: str | None, expected: str | None) -> None:
    assert registrable_domain(hostname) == expected
