"""Column types that keep the per-pageview tables small.

A pageview's row and its index entries are most of the database; on SQLite, text made them
twice the size they need to be: a timestamp is 26 characters, a random 128-bit id 32, an
IPv6 address up to 39.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

EPOCH = datetime(1970, 1, 1)
MICROSECOND = timedelta(microseconds=1)


def micros(value: datetime) -> int:
    """Microseconds since 1970-01-01 of a naive UTC datetime (how SQLite stores Timestamp)."""
    return (value - EPOCH) // MICROSECOND


class Timestamp(TypeDecorator[datetime]):
    """A naive UTC datetime: `timestamp` on PostgreSQL, integer microseconds on SQLite.

    8 bytes instead of 26 in the row and in every index on the column, with nothing lost.
    SQL that computes with such a column on SQLite works on the integer
    (tracker.services.reports: buckets and durations; tracker.models.rollups: triggers).
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(BigInteger() if dialect.name == "sqlite" else DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return micros(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None or dialect.name != "sqlite":
            return value
        return EPOCH + value * MICROSECOND


class HexId(TypeDecorator[str]):
    """A random 128-bit id, 32 lowercase hex characters in Python, 16 bytes in the database.

    Only ids the payload checks made lowercase hex reach it (tracker.domain.payloads), so
    reading one back gives the same string.
    """

    impl = LargeBinary(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes.fromhex(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else bytes(value).hex()


class PackedIP(TypeDecorator[str]):
    """An IP address in its canonical text form in Python, its 4 or 16 bytes in the database.

    Only canonical addresses reach it (tracker.enrich.netaddr.normalize_ip: compressed, no
    zone id, IPv4-mapped IPv6 unwrapped), so reading one back gives the same string.
    """

    impl = LargeBinary(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else ipaddress.ip_address(value).packed

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(ipaddress.ip_address(bytes(value)))
