"""Visitors' own data (export, erasure), the opposition list, and staff reads of personal data
that the register reserves to the data protection officer (consent proofs, authorities'
lookups)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Table, delete, func, or_, select, update
from sqlalchemy.orm import aliased

from tracker.clock import utcnow
from tracker.domain import register
from tracker.domain.privacy import LookupQuery, in_network, normalize_email
from tracker.extensions import db
from tracker.models import (
    AuthorityLookup,
    Consent,
    ErasureRecord,
    OppositionEntry,
    Page,
    Pageview,
    User,
    Visit,
)
from tracker.services import audit

COOKIE_ID = "user.device.cookie_id"
_OPPOSITION_LABEL = b"tracker.opposition.v1"


class AccessDenied(PermissionError):
    """The register does not let this role read that processing's personal data."""


def require(actor: User, processing_key: str) -> None:
    """Raise AccessDenied unless the register lets the actor's role read the processing."""
    if not register.can_read(actor.role, processing_key):
        raise AccessDenied(f"the {actor.role} role cannot read {processing_key} data")


# -- rows ------------------------------------------------------------------------------------

def delete_rows(table: Table, where: ColumnElement[bool]) -> dict[str, int]:
    """Delete rows and apply the ON DELETE rule of every foreign key pointing at them.

    SQLite does not enforce foreign keys here, so cascades are done explicitly, and the same
    way on both engines. Returns the rows deleted per table.
    """
    counts: dict[str, int] = {}
    for child in db.metadata.sorted_tables:
        for fk in child.foreign_keys:
            if fk.column.table is not table or child is table:
                continue
            referenced = select(fk.column).where(where)
            if fk.ondelete == "CASCADE":
                for name, n in delete_rows(child, fk.parent.in_(referenced)).items():
                    counts[name] = counts.get(name, 0) + n
            elif fk.ondelete == "SET NULL":
                db.session.execute(update(child).where(fk.parent.in_(referenced))
                                   .values({fk.parent.name: None}))
    deleted = db.session.execute(delete(table).where(where)).rowcount
    counts[table.name] = counts.get(table.name, 0) + deleted
    return counts


def tagged_columns(category: str) -> list[Any]:
    """Every model column tagged with a data category."""
    return [column for table in db.metadata.sorted_tables for column in table.columns
            if column.info.get("data_category") == category]


# -- visitors' self-service ------------------------------------------------------------------

def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def export_visitor(visitor_id: str, *, now: datetime) -> dict[str, Any]:
    """Everything stored under a visitor id, as JSON-ready data."""
    consents = db.session.scalars(select(Consent).where(Consent.visitor_id == visitor_id)
                                  .order_by(Consent.created_at)).all()
    visits = db.session.scalars(select(Visit).where(Visit.visitor_id == visitor_id)
                                .order_by(Visit.started_at)).all()
    page, previous = aliased(Page), aliased(Page)
    views: dict[int, list[dict[str, Any]]] = {}
    if visits:
        rows = db.session.execute(
            select(Pageview.visit_id, Pageview.ts, Pageview.engaged_ms, page.path, page.title,
                   previous.path.label("previous_path"))
            .join(page, page.id == Pageview.page_id)
            .outerjoin(previous, previous.id == Pageview.prev_page_id)
            .where(Pageview.visit_id.in_([v.id for v in visits]))
            .order_by(Pageview.ts))
        for row in rows:
            views.setdefault(row.visit_id, []).append({
                "page": row.path, "title": row.title, "time": _iso(row.ts),
                "engaged_ms": row.engaged_ms, "previous_page": row.previous_path})
    return {
        "visitor_id": visitor_id,
        "generated_at": _iso(now),
        "about": "Everything the Amniotic tracker stores under this visitor id.",
        "consents": [{
            "id": c.id, "given_at": _iso(c.created_at), "expires_at": _iso(c.expires_at),
            "withdrawn_at": _iso(c.withdrawn_at), "analytics": c.analytics,
            "location": c.location, "marketing": c.marketing, "method": c.method,
            "policy_version": c.policy_version, "lang": c.lang,
            "banner_sha256": c.banner_sha256} for c in consents],
        "visits": [{
            "started_at": _iso(v.started_at), "last_seen_at": _iso(v.last_seen_at),
            "ip": v.ip, "dns_name": v.dns_name, "asn": v.asn, "organisation": v.organization,
            "country": v.country, "city": v.city, "browser": v.browser,
            "browser_version": v.browser_version, "os": v.os, "device": v.device,
            "referrer_domain": v.referrer_domain, "utm_source": v.utm_source,
            "utm_medium": v.utm_medium, "utm_campaign": v.utm_campaign,
            "engaged_ms": v.engaged_ms, "pageviews": views.get(v.id, [])} for v in visits],
        **_other_rows(visitor_id),
    }


def _other_rows(visitor_id: str) -> dict[str, list[dict[str, Any]]]:
    """Rows of any other table keyed by a visitor id (tagged as a cookie id)."""
    known = {Consent.__table__, Visit.__table__}
    other: dict[str, list[dict[str, Any]]] = {}
    for column in tagged_columns(COOKIE_ID):
        if column.table in known:
            continue
        rows = db.session.execute(select(column.table).where(column == visitor_id)).mappings()
        other[column.table.name] = [
            {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in row.items()}
            for row in rows]
    return other


def erase_visitor(visitor_id: str, *, now: datetime) -> ErasureRecord:
    """Delete everything keyed by a visitor id; keep only a record that an erasure happened.

    Events of this visitor still in the spool are dropped when drained: their consent no
    longer exists (tracker.services.ingest re-checks consent at drain time).
    """
    counts: dict[str, int] = {}
    # Children first: pageviews of the visits, then every table holding the id, dependants
    # before what they reference (visits before consents).
    for column in sorted(tagged_columns(COOKIE_ID),
                         key=lambda c: -db.metadata.sorted_tables.index(c.table)):
        for name, n in delete_rows(column.table, column == visitor_id).items():
            counts[name] = counts.get(name, 0) + n
    record = ErasureRecord(subject="visitor", counts=audit.canonical(counts), created_at=now)
    db.session.add(record)
    db.session.flush()
    audit.record(None, "erasure.visitor", f"erasure:{record.id}", {"counts": counts})
    db.session.commit()
    return record


# -- the opposition list ---------------------------------------------------------------------

def _opposition_key() -> bytes:
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret, _OPPOSITION_LABEL, hashlib.sha256).digest()


def opposition_hmac(email: str) -> str:
    """HMAC-SHA256 of the normalized address, keyed from SECRET_KEY (keep that key stable)."""
    return hmac.new(_opposition_key(), normalize_email(email).encode(),
                    hashlib.sha256).hexdigest()


def add_to_opposition_list(email: str, source: str,
                           *, now: datetime | None = None) -> OppositionEntry:
    """Put an address on the opposition list, in the caller's transaction (caller commits).

    Only the keyed hash is stored. Listing an address again restarts its retention period.
    """
    now = now or utcnow()
    key = opposition_hmac(email)
    entry = db.session.get(OppositionEntry, key)
    if entry is None:
        entry = OppositionEntry(email_hmac=key, source=source, created_at=now)
        db.session.add(entry)
    else:
        entry.source, entry.created_at = source, now
    db.session.flush()
    return entry


def is_opposed(email: str) -> bool:
    """True when the address objected to marketing (or unsubscribed)."""
    return db.session.get(OppositionEntry, opposition_hmac(email)) is not None


# -- staff reads reserved by the register ----------------------------------------------------

def consent_proofs(actor: User, query: str) -> list[Consent]:
    """The consent proofs with this consent id or visitor id; the read is audited."""
    require(actor, "consent_proofs")
    query = query.strip().lower()
    proofs = list(db.session.scalars(
        select(Consent).where(or_(Consent.id == query, Consent.visitor_id == query))
        .order_by(Consent.created_at)))
    audit.record(actor, "consent_proofs.read", "consents", {"results": len(proofs)})
    db.session.commit()
    return proofs


LOOKUP_FIELDS = ("started_at", "last_seen_at", "ip", "dns_name", "asn", "organisation",
                 "browser", "os", "device", "pageviews", "entry_page")
LOCATION_FIELDS = ("country", "city")


@dataclass(frozen=True)
class LookupResult:
    lookup: AuthorityLookup
    fields: tuple[str, ...]
    rows: list[dict[str, Any]]
    csv: str


def authority_lookup(actor: User, query: LookupQuery, *, now: datetime) -> LookupResult:
    """Visits from an IP address or network within a time window, for an authority.

    Recorded with its legal reference and audited; the CSV is what is handed over.
    """
    require(actor, "analytics")
    fields = LOOKUP_FIELDS + (LOCATION_FIELDS if register.can_read(actor.role, "location")
                              else ())
    candidates = db.session.execute(
        select(Visit, Page.path).join(Page, Page.id == Visit.entry_page_id)
        .where(Visit.ip.is_not(None), Visit.started_at <= query.ends_at,
               Visit.last_seen_at >= query.starts_at)
        .where(*([Visit.ip == str(query.network.network_address)]
                 if query.network.num_addresses == 1 else []))
        .order_by(Visit.started_at))
    rows = []
    for visit, entry_path in candidates:
        if not in_network(visit.ip, query.network):
            continue
        row = {"started_at": _iso(visit.started_at), "last_seen_at": _iso(visit.last_seen_at),
               "ip": visit.ip, "dns_name": visit.dns_name, "asn": visit.asn,
               "organisation": visit.organization, "browser": visit.browser, "os": visit.os,
               "device": visit.device, "pageviews": visit.pageviews, "entry_page": entry_path,
               "country": visit.country, "city": visit.city}
        rows.append({name: row[name] for name in fields})
    text = _csv(fields, rows)
    lookup = AuthorityLookup(
        created_at=now, actor_id=actor.id, authority=query.authority,
        legal_reference=query.legal_reference, network=str(query.network),
        starts_at=query.starts_at, ends_at=query.ends_at, result_count=len(rows),
        results_sha256=hashlib.sha256(text.encode()).hexdigest())
    db.session.add(lookup)
    db.session.flush()
    audit.record(actor, "authority.lookup", f"authority_lookup:{lookup.id}",
                 {"authority": query.authority, "legal_reference": query.legal_reference,
                  "results": len(rows)})
    db.session.commit()
    return LookupResult(lookup, fields, rows, text)


def past_lookups(actor: User, limit: int = 50) -> list[AuthorityLookup]:
    """The latest authorities' lookups (they name IP addresses: the read is audited)."""
    require(actor, "authority_requests")
    lookups = list(db.session.scalars(select(AuthorityLookup)
                                      .order_by(AuthorityLookup.created_at.desc())
                                      .limit(limit)))
    if lookups:
        audit.record(actor, "authority.lookups_read", "authority_lookups",
                     {"results": len(lookups)})
        db.session.commit()
    return lookups


def _csv(fields: Iterable[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def erasure_counts(record: ErasureRecord) -> dict[str, int]:
    return json.loads(record.counts)


def count_erasures() -> int:
    return db.session.scalar(select(func.count()).select_from(ErasureRecord)) or 0
