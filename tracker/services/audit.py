"""The staff audit log: append-only, each entry chained to the previous one by an HMAC.

``hash = HMAC-SHA256(key, prev_hash + "\\n" + canonical JSON of the entry)``, with a key derived
from SECRET_KEY. Someone who can write to the database but does not know the key cannot edit
an entry, forge one, or remove one from the middle without `verify` noticing: every entry's
MAC is recomputed and sequence numbers are gapless. Removing the newest entries is caught by
comparing with the head hash printed by `flask --app tracker audit verify` and kept elsewhere.

Retention prunes the oldest entries; it first appends an ``audit.pruned`` entry naming the last
pruned sequence number and hash, which then anchors the start of the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tracker.clock import utcnow
from tracker.extensions import db
from tracker.models import AuditEntry, AuditHead, User

GENESIS = "0" * 64
HEAD_ID = 1
PRUNED = "audit.pruned"
SYSTEM = "system"  # the actor of CLI and scheduled actions
_KEY_LABEL = b"tracker.audit.v1"


def _key() -> bytes:
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()


def canonical(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def _mac(key: bytes, entry: Any, prev_hash: str) -> str:
    payload = canonical({
        "seq": entry.seq, "created_at": entry.created_at.isoformat(),
        "actor_id": entry.actor_id, "actor": entry.actor_label, "action": entry.action,
        "target": entry.target, "details": entry.details,
    })
    return hmac.new(key, f"{prev_hash}\n{payload}".encode(), hashlib.sha256).hexdigest()


def _lock_head() -> AuditHead:
    """Take the head row's write lock (held until the caller commits), creating it if absent."""
    bump = update(AuditHead).where(AuditHead.id == HEAD_ID).values(seq=AuditHead.seq + 1)
    if db.session.execute(bump).rowcount == 0:
        dialect = sqlite if db.engine.dialect.name == "sqlite" else postgresql
        db.session.execute(dialect.insert(AuditHead)
                           .values(id=HEAD_ID, seq=0, hash=GENESIS)
                           .on_conflict_do_nothing(index_elements=["id"]))
        db.session.execute(bump)
    head = db.session.get(AuditHead, HEAD_ID, populate_existing=True)
    assert head is not None
    return head


def record(actor: User | None, action: str, target: str,
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Append an entry in the caller's transaction (the caller commits); None is the system."""
    head = _lock_head()
    entry = AuditEntry(
        seq=head.seq,
        # Taken under the lock, so time order and sequence order agree.
        created_at=utcnow(),
        actor_id=actor.id if actor is not None else None,
        actor_label=actor.email if actor is not None else SYSTEM,
        action=action, target=target, details=canonical(details or {}), prev_hash=head.hash,
    )
    entry.hash = _mac(_key(), entry, head.hash)
    head.hash = entry.hash
    db.session.add(entry)
    db.session.flush()
    return entry


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str  # altered | removed
    message: str


@dataclass
class VerifyResult:
    """What `verify` found: `ok` when no entry was altered or removed."""

    entries: int = 0
    first_seq: int | None = None
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _entries(batch: int = 2000) -> Iterator[Any]:
    """Every entry in sequence order, as plain rows (the session's identity map stays small)."""
    table = AuditEntry.__table__
    last = 0
    while True:
        rows = db.session.execute(select(table).where(table.c.seq > last)
                                  .order_by(table.c.seq).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(expected_head: str | None = None) -> VerifyResult:
    """Check every entry's MAC and the chain's continuity; see the module docstring."""
    key = _key()
    result = VerifyResult()
    anchor: tuple[int, str] | None = None  # the newest verified prune: (seq, hash)
    first: Any = None
    previous: Any = None
    seen_expected = expected_head is None
    for entry in _entries():
        result.entries += 1
        if first is None:
            first = entry
            result.first_seq = entry.seq
        if _mac(key, entry, entry.prev_hash) != entry.hash:
            result.problems.append(Problem(entry.seq, "altered",
                                           f"entry {entry.seq} was altered"))
        elif entry.action == PRUNED:
            details = json.loads(entry.details)
            anchor = (int(details["through_seq"]), str(details["through_hash"]))
        if previous is not None:
            if entry.seq != previous.seq + 1:
                result.problems.append(Problem(
                    previous.seq + 1, "removed",
                    f"entries {previous.seq + 1} to {entry.seq - 1} were removed"))
            elif entry.prev_hash != previous.hash:
                result.problems.append(Problem(entry.seq, "altered",
                                               f"the link before entry {entry.seq} is broken"))
        seen_expected = seen_expected or entry.hash == expected_head
        previous = entry
    if first is not None:
        _check_start(first, anchor, result)
    head = db.session.get(AuditHead, HEAD_ID)
    result.head_seq = head.seq if head else 0
    result.head_hash = head.hash if head else GENESIS
    last_seq, last_hash = (previous.seq, previous.hash) if previous else (0, GENESIS)
    if (last_seq, last_hash) != (result.head_seq, result.head_hash) and previous is not None:
        result.problems.append(Problem(
            last_seq + 1, "removed",
            f"the log ends at entry {last_seq} but its head says {result.head_seq}"))
    elif previous is None and result.head_seq:
        result.problems.append(Problem(1, "removed", "every entry was removed"))
    if not seen_expected and not (anchor and anchor[1] == expected_head):
        result.problems.append(Problem(
            result.head_seq, "removed",
            f"the head hash kept elsewhere ({expected_head}) is not in the log"))
    return result


def _check_start(first: Any, anchor: tuple[int, str] | None,
                 result: VerifyResult) -> None:
    if first.seq == 1 and first.prev_hash == GENESIS:
        return
    # Entries up to the anchor may have been pruned by retention; nothing after it.
    if anchor is not None and first.seq <= anchor[0] + 1:
        if first.seq == anchor[0] + 1 and first.prev_hash != anchor[1]:
            result.problems.append(Problem(first.seq, "altered",
                                           f"entry {first.seq} does not follow the anchor"))
        return
    result.problems.append(Problem(1, "removed",
                                   f"entries before {first.seq} were removed"))


def prune_candidates(cutoff: Any) -> tuple[int, str] | None:
    """The sequence number and hash of the newest entry older than `cutoff`, if any."""
    row = db.session.execute(
        select(AuditEntry.seq, AuditEntry.hash)
        .where(AuditEntry.seq == select(func.max(AuditEntry.seq))
               .where(AuditEntry.created_at < cutoff).scalar_subquery())
    ).first()
    return (row.seq, row.hash) if row else None


def review(actor: User, expected_head: str | None = None,
           limit: int = 200) -> tuple[VerifyResult, list[AuditEntry]]:
    """Verify the log and return its newest entries; reading it is itself audited."""
    result = verify(expected_head)
    entries = recent(limit)
    record(actor, "audit.read", "audit_log", {"entries": len(entries)})
    db.session.commit()
    return result, entries


def recent(limit: int = 100) -> list[AuditEntry]:
    """The newest entries, newest first."""
    return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())
                                   .limit(limit)))
