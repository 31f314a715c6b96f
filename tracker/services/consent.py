"""Record consent decisions (the proofs) and look them up for the collector."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select, update

from tracker.domain.consent import CONSENT_LIFETIME, Choices, ConsentState
from tracker.domain.payloads import ConsentDecision
from tracker.extensions import db
from tracker.models import Consent


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
