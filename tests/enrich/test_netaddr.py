"""Tests for IP normalisation, proxy-aware client address and the public-IP check."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.enrich.netaddr import client_ip, is_public_ip, normalize_ip

arbitrary_text = st.one_of(
    st.text(),
    st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("  1.2.3.4\n", "1.2.3.4"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::1", "::1"),
        ("", None),
        ("1.2.3", None),
        ("01.2.3.4", None),
        ("1.2.3.4:80", None),
        ("fe80::1%eth0", None),
        ("1.2.3.4\x00", None),
        ("\ud800", None),
        ("9" * 100_000, None),
    ],
)
def test_normalize_ip(value: str, expected: str | None) -> None:
    assert normalize_ip(value) == expected


@pytest.mark.parametrize(
    ("remote", "forwarded", "proxies", "expected"),
    [
        # No trusted proxy: the header is client-controlled and must be ignored.
        ("10.0.0.1", "203.0.113.9", 0, "10.0.0.1"),
        ("10.0.0.1", None, 0, "10.0.0.1"),
        # One proxy: it appends the peer it saw, i.e. the last entry.
        ("10.0.0.1", "203.0.113.9", 1, "203.0.113.9"),
        ("10.0.0.1", "6.6.6.6, 203.0.113.9", 1, "203.0.113.9"),
        # Two proxies: second entry from the right; the forged left entry is skipped.
        ("10.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2", 2, "203.0.113.9"),
        ("10.0.0.1", "203.0.113.9,10.0.0.2", 2, "203.0.113.9"),
        # Chain shorter than the number of proxies: fall back to the socket peer.
        ("10.0.0.1", "203.0.113.9", 2, "10.0.0.1"),
        ("10.0.0.1", "", 1, "10.0.0.1"),
        ("10.0.0.1", None, 1, "10.0.0.1"),
        # Garbage where the client should be: fall back.
        ("10.0.0.1", "not-an-ip", 1, "10.0.0.1"),
        ("10.0.0.1", "203.0.113.9, unknown", 1, "10.0.0.1"),
        ("10.0.0.1", "203.0.113.9:4711", 1, "10.0.0.1"),
        # IPv6 and IPv4-mapped addresses.
        ("::1", "2001:DB8::0:1", 1, "2001:db8::1"),
        ("10.0.0.1", "::ffff:203.0.113.9", 1, "203.0.113.9"),
        ("::ffff:10.0.0.1", None, 0, "10.0.0.1"),
        # Nothing usable at all.
        (None, None, 0, None),
        ("garbage", "also garbage", 1, None),
    ],
)
def test_client_ip(
    remote: str | None, forwarded: str | None, proxies: int, expected: str | None
) -> None:
    assert client_ip(remote, forwarded, proxies) == expected


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("89.160.20.112", True),
        ("2001:1700::1", True),
        ("::ffff:89.160.20.112", True),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("172.16.0.1", False),
        ("127.0.0.1", False),
        ("::1", False),
        ("169.254.1.1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("100.64.0.1", False),
        ("not an ip", False),
    ],
)
def test_is_public_ip(ip: str, expected: bool) -> None:
    assert is_public_ip(ip) is expected


@given(arbitrary_text)
def test_normalize_ip_never_raises(value: str) -> None:
    result = normalize_ip(value)
    assert result is None or normalize_ip(result) == result


@given(
    st.none() | arbitrary_text,
    st.none() | arbitrary_text,
    st.integers(min_value=-1, max_value=5),
)
def test_client_ip_never_raises(remote: str | None, forwarded: str | None, proxies: int) -> None:
    result = client_ip(remote, forwarded, proxies)
    assert result is None or normalize_ip(result) == result


@given(arbitrary_text)
def test_is_public_ip_never_raises(value: str) -> None:
    assert isinstance(is_public_ip(value), bool)


@given(st.ip_addresses())
def test_normalize_ip_round_trips(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    result = normalize_ip(str(ip))
    assert result is not None
    expected = getattr(ip, "ipv4_mapped", None) or ip
    assert ipaddress.ip_address(result) == expected


@given(st.ip_addresses(v=6).map(lambda ip: ip.exploded.upper()))
def test_normalize_ip_compresses_ipv6(text: str) -> None:
    result = normalize_ip(text)
    assert result is not None
    assert result == ipaddress.ip_address(result).compressed
