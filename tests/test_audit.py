"""The audit log: an HMAC chain that reports any entry altered or removed."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from tests.helpers import make_user
from tracker.clock import utcnow
from tracker.extensions import db
from tracker.models import AuditEntry, AuditHead
from tracker.services import audit, retention


def append(count: int, actor=None) -> list[AuditEntry]:
    made = []
    for i in range(count):
        made.append(audit.record(actor, "test.action", f"thing:{i}", {"i": i, "é": "ü"}))
        db.session.commit()
    return made


def problems() -> list[tuple[str, int]]:
    db.session.expire_all()
    return [(p.kind, p.seq) for p in audit.verify().problems]


def test_entries_are_chained_and_verify(app):
    user = make_user("dpo@amniotic.studio", "dpo")
    made = append(3, user)
    assert [e.seq for e in made] == [1, 2, 3]
    assert made[0].prev_hash == audit.GENESIS
    assert [e.prev_hash for e in made[1:]] == [e.hash for e in made[:-1]]
    assert made[0].actor_label == "dpo@amniotic.studio" and made[0].actor_id == user.id
    result = audit.verify()
    assert result.ok and result.entries == 3
    assert (result.head_seq, result.head_hash) == (3, made[-1].hash)


def test_record_joins_the_callers_transaction(app):
    append(1)
    audit.record(None, "test.rolled_back", "x")
    db.session.rollback()
    assert db.session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())) == 1
    assert audit.verify().ok and append(1)[0].seq == 2


@pytest.mark.parametrize(("column", "value"), [
    ("details", '{"i":99}'), ("action", "test.other"), ("target", "thing:x"),
    ("actor_label", "someone@else"), ("actor_id", 42), ("seq", 99),
])
def test_any_edited_field_is_reported(app, column, value):
    append(3)
    db.session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values({column: value}))
    db.session.commit()
    assert ("altered", 2 if column != "seq" else 99) in problems()


def test_an_edited_date_is_reported(app):
    made = append(2)
    db.session.execute(update(AuditEntry).where(AuditEntry.seq == 1)
                       .values(created_at=made[0].created_at - timedelta(seconds=1)))
    db.session.commit()
    assert problems() == [("altered", 1)]


def test_a_recomputed_hash_without_the_key_breaks_the_link(app):
    append(3)
    db.session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(hash="f" * 64))
    db.session.commit()
    assert {("altered", 2), ("altered", 3)} <= set(problems())


@pytest.mark.parametrize(("seq", "expected"), [(1, ("removed", 1)), (2, ("removed", 2)),
                                               (3, ("removed", 3))])
def test_a_removed_entry_is_reported(app, seq, expected):
    append(3)
    db.session.execute(delete(AuditEntry).where(AuditEntry.seq == seq))
    db.session.commit()
    assert expected in problems()


def test_removing_the_newest_entries_is_caught_by_the_head_kept_elsewhere(app):
    made = append(3)
    kept_elsewhere = made[-1].hash
    db.session.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    db.session.execute(update(AuditHead).values(seq=2, hash=made[1].hash))
    db.session.commit()
    assert audit.verify().ok  # consistent, as far as the database alone can tell
    result = audit.verify(expected_head=kept_elsewhere)
    assert not result.ok and "kept elsewhere" in result.problems[0].message
    assert audit.verify(expected_head=made[1].hash).ok


def test_another_secret_key_verifies_nothing(app):
    append(2)
    app.config["SECRET_KEY"] = "another key"
    assert problems() == [("altered", 1), ("altered", 2)]


def test_retention_prunes_old_entries_and_the_chain_still_verifies(app):
    append(2)
    report = retention.run(now=utcnow() + timedelta(days=400), batch_size=1)
    assert report.by_table()["audit_log"] == 2
    seqs = db.session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
    assert seqs[0] == 3  # the anchor (audit.pruned), then the run's own entry
    assert audit.verify().ok
    # Removing the anchor is a removal like any other.
    db.session.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    db.session.commit()
    assert ("removed", 1) in problems()


def test_a_partly_done_prune_still_verifies(app):
    made = append(4)
    audit.record(None, audit.PRUNED, "audit_log",
                 {"through_seq": 3, "through_hash": made[2].hash})
    db.session.commit()
    db.session.execute(delete(AuditEntry).where(AuditEntry.seq == 1))
    db.session.commit()
    assert audit.verify().ok
    db.session.execute(delete(AuditEntry).where(AuditEntry.seq == 4))  # beyond the anchor
    db.session.commit()
    assert ("removed", 4) in problems()


def test_concurrent_appends_never_fork_the_chain(app):
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                for _ in range(8):
                    audit.record(None, "test.concurrent", "x")
                    db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    result = audit.verify()
    assert result.ok and result.entries == 24 and result.head_seq == 24


def test_cli_verify_prints_the_head_and_fails_on_tampering(app):
    made = append(2)
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and f"head: 2 {made[-1].hash}" in ok.output
    db.session.execute(update(AuditEntry).where(AuditEntry.seq == 1).values(target="y"))
    db.session.commit()
    bad = runner.invoke(args=["audit", "verify"])
    assert bad.exit_code == 1 and "ALTERED: entry 1 was altered" in bad.output
