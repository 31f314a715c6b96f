"""Record consent decisions (the proofs) and look them up for the collector."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, event, select, update

from tracker.domain.consent import CONSENT_LIFETIME, Choices, ConsentState
from tracker.domain.payloads import ConsentDecision
from tracker.extensions import db
from tracker.models import Consent

log = logging.getLogger("tracker.consent")
# Bound parameters per IN (...) list: well under SQLite's and PostgreSQL's limits.
IN_CHUNK = 500


class ConsentStoreUnavailable(Exception):
    """The database holding the consents cannot be reached: the caller should retry later."""


def new_id() -> str:
    """A random 128-bit identifier as 32 hex characters."""
    return secrets.token_hex(16)


def record_decision(decision: ConsentDecision, *, banner_sha256: str, now: datetime) -> Consent:
    """Store a decision; it supersedes every earlier decision of the same visitor."""
    if decision.visitor_id:
        db.session.execute(
            update(Consent)
            .where(Consent.visitor_id == decision.visitor_id, Consent.withdrawn_at.is_(None))
            .values(withdrawn_at=now)
        )
    visitor_id = None
    if decision.choices.analytics:
        visitor_id = decision.visitor_id or new_id()
    consent = Consent(
        id=new_id(),
        visitor_id=visitor_id,
        analytics=decision.choices.analytics,
        location=decision.choices.location and decision.choices.analytics,
        marketing=decision.choices.marketing,
        method=decision.method,
        policy_version=decision.policy_version,
        lang=decision.lang,
        banner_sha256=banner_sha256,
        created_at=now,
        expires_at=now + CONSENT_LIFETIME,
    )
    db.session.add(consent)
    db.session.commit()
    return consent


def lookup(consent_id: str | None) -> ConsentState | None:
    """The stored decision with this id, or None."""
    if consent_id is None:
        return None
    row = db.session.execute(
        select(Consent.visitor_id, Consent.analytics, Consent.location, Consent.marketing,
               Consent.expires_at, Consent.withdrawn_at, Consent.policy_version)
        .where(Consent.id == consent_id)
    ).first()
    if row is None:
        return None
    return ConsentState(
        consent_id=consent_id,
        visitor_id=row.visitor_id,
        choices=Choices(row.analytics, row.location, row.marketing),
        policy_version=row.policy_version,
        expires_at=row.expires_at,
        withdrawn_at=row.withdrawn_at,
    )


_COLUMNS = ("visitor_id", "analytics", "location", "marketing", "expires_at", "withdrawn_at",
            "policy_version")


def _state(consent_id: str, row: Any) -> ConsentState:
    visitor_id, analytics, location, marketing, expires_at, withdrawn_at, policy = row
    return ConsentState(
        consent_id=consent_id,
        visitor_id=visitor_id,
        choices=Choices(bool(analytics), bool(location), bool(marketing)),
        policy_version=policy,
        expires_at=expires_at,
        withdrawn_at=withdrawn_at,
    )


def states(connection: Connection, consent_ids: Collection[str]) -> dict[str, ConsentState]:
    """The stored decisions among `consent_ids`, by id, in a few queries (for the drain)."""
    ids = sorted(consent_ids)
    found: dict[str, ConsentState] = {}
    columns = [getattr(Consent, name) for name in _COLUMNS]
    for start in range(0, len(ids), IN_CHUNK):
        rows = connection.execute(
            select(Consent.id, *columns).where(Consent.id.in_(ids[start:start + IN_CHUNK])))
        for row in rows:
            found[row[0]] = _state(row[0], tuple(row[1:]))
    return found


class ConsentReader:
    """Look a consent up on the request path, as cheaply as a database allows.

    No cache: a withdrawal or an erasure is seen by the very next beacon. Instead, each
    thread keeps one raw DBAPI connection (outside the pool, in autocommit, so a lookup is
    one statement and no transaction) and runs one prepared statement on it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        query = select(*(getattr(Consent, name) for name in _COLUMNS)).where(
            Consent.id == bindparam("id"))
        self.sql = str(query.compile(dialect=engine.dialect))
        self.positional = engine.dialect.positional
        # The raw cursor bypasses SQLAlchemy's types: apply their conversions here.
        self.bind_id = Consent.id.type.bind_processor(engine.dialect) or (lambda v: v)
        self.results = [c.type.result_processor(engine.dialect, None) or (lambda v: v)
                        for c in query.selected_columns]
        self.errors: tuple[type[BaseException], ...] = (engine.dialect.loaded_dbapi.Error,)
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()
        # Tests dispose of the engine after each test: close these connections with it.
        event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            return connection
        pooled = self.engine.raw_connection()
        pooled.detach()
        connection = pooled.dbapi_connection
        if self.postgres:
            connection.autocommit = True
        self._local.connection, self._local.pid = connection, os.getpid()
        with self._lock:
            self._opened.append(connection)
        return connection

    def _discard(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _fetch(self, consent_id: str) -> list[Any]:
        cursor = self._connection().cursor()
        try:
            bound = self.bind_id(consent_id)
            params: Any = (bound,) if self.positional else {"id": bound}
            if self.postgres:
                cursor.execute(self.sql, params, prepare=True)
            else:
                cursor.execute(self.sql, params)
            # fetchall() runs the statement to its end, so SQLite keeps no read open.
            return cursor.fetchall()
        finally:
            cursor.close()

    def lookup(self, consent_id: str | None) -> ConsentState | None:
        """The stored decision with this id, or None; ConsentStoreUnavailable when down."""
        if consent_id is None:
            return None
        try:
            rows = self._fetch(consent_id)
        except self.errors:
            # A connection broken by a database restart: one fresh attempt.
            self._discard()
            try:
                rows = self._fetch(consent_id)
            except self.errors as exc:
                self._discard()
                log.warning("consent lookup failed: %s", exc.__class__.__name__)
                raise ConsentStoreUnavailable("the consent store is unavailable") from exc
        if not rows:
            return None
        values = [convert(v) for convert, v in zip(self.results, rows[0], strict=True)]
        return _state(consent_id, values)

    def close(self) -> None:
        """Close every connection this reader opened, in any thread."""
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            with contextlib.suppress(Exception):
                connection.close()
        self._local = threading.local()
