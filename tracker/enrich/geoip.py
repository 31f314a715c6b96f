"""Offline IP enrichment from MaxMind ASN and City databases."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any

import geoip2.database
import geoip2.errors

from tracker.enrich.netaddr import normalize_ip

log = logging.getLogger("tracker.enrich")

CACHE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Network:
    """Autonomous system an address belongs to."""

    asn: int | None
    organization: str | None


@dataclass(frozen=True, slots=True)
class Location:
    """Coarse location of an address: ISO country code and English city name."""

    country: str | None
    city: str | None


def _open(path: str | None, label: str, required_type: str, feature: str) -> Any:
    """Open one database, or log a single warning and return None when it is unusable."""
    if path is None:
        return None
    if not os.path.exists(path):
        log.warning("GeoIP %s database not found at %s: %s disabled", label, path, feature)
        return None
    try:
        # MODE_MEMORY reads the file once, so a geoipupdate run replacing it later cannot
        # pull pages out from under a live mmap.
        reader = geoip2.database.Reader(path, mode=geoip2.database.MODE_MEMORY)
    except Exception as exc:
        log.warning(
            "GeoIP %s database at %s could not be opened (%s): %s disabled",
            label,
            path,
            exc,
            feature,
        )
        return None
    db_type = reader.metadata().database_type
    # Checked up front: geoip2 would otherwise raise TypeError on every single lookup.
    if required_type not in db_type:
        reader.close()
        log.warning(
            "GeoIP %s database at %s is of type %r, expected %s: %s disabled",
            label,
            path,
            db_type,
            required_type,
            feature,
        )
        return None
    return reader


class GeoIP:
    """ASN/organisation and country/city lookups with per-IP result caching."""

    def __init__(self, asn_db: str | None, city_db: str | None) -> None:
        """Open the configured databases; unusable ones are disabled with a warning."""
        self._asn = _open(asn_db, "ASN", "GeoLite2-ASN", "organisation enrichment")
        self._city = _open(city_db, "City", "City", "location enrichment")
        # Per-instance caches (not lru_cache on the methods) so closing or discarding an
        # instance releases its cache too.
        self._network_cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._network)
        self._location_cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._location)

    @property
    def asn_enabled(self) -> bool:
        """Whether ASN/organisation lookups are available."""
        return self._asn is not None

    @property
    def city_enabled(self) -> bool:
        """Whether country/city lookups are available."""
        return self._city is not None

    def network(self, ip: str) -> Network | None:
        """Return the ASN and organisation for ip, or None."""
        if self._asn is None:
            return None
        key = normalize_ip(ip)
        return None if key is None else self._network_cached(key)

    def location(self, ip: str) -> Location | None:
        """Return the country code and city for ip, or None."""
        if self._city is None:
            return None
        key = normalize_ip(ip)
        return None if key is None else self._location_cached(key)

    def _network(self, ip: str) -> Network | None:
        """Uncached ASN lookup."""
        reader = self._asn
        if reader is None:
            return None
        try:
            rec = reader.asn(ip)
        except geoip2.errors.AddressNotFoundError:
            return None
        except Exception:
            log.debug("GeoIP ASN lookup failed for %s", ip, exc_info=True)
            return None
        return Network(rec.autonomous_system_number, rec.autonomous_system_organization)

    def _location(self, ip: str) -> Location | None:
        """Uncached City lookup."""
        reader = self._city
        if reader is None:
            return None
        try:
            rec = reader.city(ip)
        except geoip2.errors.AddressNotFoundError:
            return None
        except Exception:
            log.debug("GeoIP City lookup failed for %s", ip, exc_info=True)
            return None
        return Location(rec.country.iso_code, rec.city.names.get("en"))

    def close(self) -> None:
        """Close the databases and drop cached results; later lookups return None."""
        for reader in (self._asn, self._city):
            if reader is not None:
                reader.close()
        self._asn = self._city = None
        self._network_cached.cache_clear()
        self._location_cached.cache_clear()

    def __enter__(self) -> GeoIP:
        """Support `with GeoIP(...) as geo:`."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on leaving the with-block."""
        self.close()
