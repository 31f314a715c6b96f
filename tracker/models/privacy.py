"""Privacy operations: the audit log, erasures, data-subject and authorities' requests,
retention runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db

EMAIL = {"data_category": "user.contact.email"}
PRIVATE = {"data_category": "user.content.private"}
IP = {"data_category": "user.device.ip_address"}


class AuditEntry(db.Model):
    """One staff action, chained to the previous entry by an HMAC (see services/audit.py).

    No foreign keys on purpose: a cascade rewriting a row would break its HMAC.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Gapless: assigned under the lock of `audit_head`, so a missing number is a removed entry.
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str] = mapped_column(String(254), info=EMAIL)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as MAC'ed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(db.Model):
    """The single row holding the last sequence number and hash; appending locks it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class ErasureRecord(db.Model):
    """That an erasure happened, and how many rows it removed: no personal data."""

    __tablename__ = "erasure_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(16))  # visitor | email
    request_id: Mapped[int | None] = mapped_column(Integer)
    counts: Mapped[str] = mapped_column(Text)  # JSON: table -> rows removed
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class PrivacyRequest(db.Model):
    """A data-subject request made by e-mail: access, rectification, erasure or objection."""

    __tablename__ = "privacy_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Random, unguessable: the requester's handle in URLs (the integer id stays internal).
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Emptied when a handled request is anonymised (see the register's retention rules).
    email: Mapped[str | None] = mapped_column(String(254), index=True, info=EMAIL)
    details: Mapped[str | None] = mapped_column(Text, info=PRIVATE)
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    # unverified -> pending (identity checked) -> approved | denied
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime)
    due_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    decided_by: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    export_json: Mapped[str | None] = mapped_column(Text, info=PRIVATE)
    export_expires_at: Mapped[datetime | None] = mapped_column(DateTime)


class VerificationCode(db.Model):
    """A one-time proof of control of the address: a 6-digit code and a signed link."""

    __tablename__ = "verification_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("privacy_requests.id", ondelete="CASCADE"), index=True)
    code_hmac: Mapped[str] = mapped_column(String(64))  # never the code itself
    link_nonce: Mapped[str] = mapped_column(String(32), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)


class AuthorityLookup(db.Model):
    """One lookup of visits by IP address or network, made for an authority."""

    __tablename__ = "authority_lookups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor_id: Mapped[int] = mapped_column(Integer)
    authority: Mapped[str] = mapped_column(String(200))
    legal_reference: Mapped[str] = mapped_column(String(300))
    network: Mapped[str] = mapped_column(String(64), info=IP)
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    result_count: Mapped[int] = mapped_column(Integer)
    results_sha256: Mapped[str] = mapped_column(String(64))  # of the CSV handed over


class RetentionRun(db.Model):
    """One run of the retention job, for the dashboard's "last successful run"."""

    __tablename__ = "retention_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed
    counts: Mapped[str] = mapped_column(Text, default="{}")  # JSON: rule -> rows
    error: Mapped[str | None] = mapped_column(Text)
