"""Tests for GeoIP enrichment against MaxMind's published test databases."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracker.enrich.geoip import GeoIP, Location, Network

DATA = Path(__file__).resolve().parent.parent / "data" / "geoip"
ASN_DB = str(DATA / "GeoLite2-ASN-Test.mmdb")
CITY_DB = str(DATA / "GeoIP2-City-Test.mmdb")


@pytest.fixture
def geo() -> Iterator[GeoIP]:
    with GeoIP(ASN_DB, CITY_DB) as geoip:
        yield geoip


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "tracker.enrich" and r.levelno == logging.WARNING
    ]


def test_both_databases_enabled(geo: GeoIP) -> None:
    assert geo.asn_enabled
    assert geo.city_enabled


@pytest.mark.parametrize(
    ("ip", "network", "location"),
    [
        ("89.160.20.112", Network(29518, "Bredband2 AB"), Location("SE", "Linköping")),
        ("::ffff:89.160.20.112", Network(29518, "Bredband2 AB"), Location("SE", "Linköping")),
        (" 89.160.20.200 ", Network(29518, "Bredband2 AB"), Location("SE", "Linköping")),
        ("216.160.83.56", Network(209, None), Location("US", "Milton")),
        ("2001:1700::1", Network(6730, "Sunrise Communications AG"), None),
        ("2001:218::1", None, Location("JP", None)),
        ("8.8.8.8", None, None),
        ("10.0.0.1", None, None),
        ("127.0.0.1", None, None),
    ],
)
def test_lookups(geo: GeoIP, ip: str, network: Network | None, location: Location | None) -> None:
    assert geo.network(ip) == network
    assert geo.location(ip) == location


@pytest.mark.parametrize(
    "ip", ["", "not an ip", "89.160.20", "89.160.20.112/24", "\x00", "\ud800", "1" * 100_000]
)
def test_garbage_ip_returns_none(geo: GeoIP, ip: str) -> None:
    assert geo.network(ip) is None
    assert geo.location(ip) is None


def test_repeat_lookups_are_cached(geo: GeoIP) -> None:
    first = geo.network("89.160.20.112")
    assert geo.network("89.160.20.112") is first
    assert geo.location("89.160.20.112") is geo.location("89.160.20.112")


def test_none_paths_disable_silently(caplog: pytest.LogCaptureFixture) -> None:
    with GeoIP(None, None) as geoip:
        assert not geoip.asn_enabled
        assert not geoip.city_enabled
        assert geoip.network("89.160.20.112") is None
        assert geoip.location("89.160.20.112") is None
    assert _warnings(caplog) == []


def test_missing_database_logs_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "nope.mmdb")
    with GeoIP(missing, CITY_DB) as geoip:
        assert not geoip.asn_enabled
        assert geoip.city_enabled
        assert geoip.network("89.160.20.112") is None
        assert geoip.network("89.160.20.112") is None
        assert geoip.location("89.160.20.112") == Location("SE", "Linköping")
    [record] = _warnings(caplog)
    message = record.getMessage()
    assert "ASN database not found" in message
    assert missing in message
    assert "disabled" in message


def test_wrong_database_type_is_disabled(caplog: pytest.LogCaptureFixture) -> None:
    with GeoIP(CITY_DB, ASN_DB) as geoip:
        assert not geoip.asn_enabled
        assert not geoip.city_enabled
        assert geoip.network("89.160.20.112") is None
        assert geoip.location("89.160.20.112") is None
    records = _warnings(caplog)
    assert len(records) == 2
    assert "GeoIP2-City" in records[0].getMessage()
    assert "GeoLite2-ASN" in records[1].getMessage()


@pytest.mark.parametrize("content", [b"", b"this is not a MaxMind database" * 10])
def test_corrupt_database_is_disabled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(content)
    with GeoIP(None, str(bad)) as geoip:
        assert not geoip.city_enabled
        assert geoip.location("89.160.20.112") is None
    [record] = _warnings(caplog)
    assert "could not be opened" in record.getMessage()


def test_directory_instead_of_file_is_disabled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with GeoIP(str(tmp_path), None) as geoip:
        assert not geoip.asn_enabled
    assert len(_warnings(caplog)) == 1


def test_closed_instance_returns_none() -> None:
    geoip = GeoIP(ASN_DB, CITY_DB)
    assert geoip.network("89.160.20.112") is not None
    geoip.close()
    assert not geoip.asn_enabled
    assert geoip.network("89.160.20.112") is None
    assert geoip.location("89.160.20.112") is None
