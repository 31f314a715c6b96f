"""The retention job: apply every rule of the register of processing.

Rows are selected by primary key in batches (TRACKER_RETENTION_BATCH_SIZE), each batch its own
short transaction, so the collector's drainer is never locked out for long. Running twice
changes nothing the second time. Each real run appends its counts per table to the audit log;
every run, dry or not, is recorded for the dashboard's "last successful run".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Table, and_, exists, func, or_, select, update

from tracker.domain import register
from tracker.domain.register import ANONYMISE, RETENTION_RUN_MAX_AGE, RetentionRule
from tracker.extensions import db
from tracker.models import AuditEntry, RetentionRun, User, Visit
from tracker.services import audit, partitions, runtime
from tracker.services.privacy import delete_rows

RUNNING, OK, FAILED = "running", "ok", "failed"


@dataclass
class RuleOutcome:
    key: str
    table: str
    action: str
    cutoff: datetime
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows removed/anonymised


@dataclass
class RunReport:
    run_id: int
    dry_run: bool
    outcomes: list[RuleOutcome]

    def by_table(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for outcome in self.outcomes:
            for table, n in outcome.rows.items():
                totals[table] = totals.get(table, 0) + n
        return totals

    def by_rule(self) -> dict[str, int]:
        return {o.key: sum(o.rows.values()) for o in self.outcomes}


def _table(name: str) -> Table:
    return db.metadata.tables[name]


def _pk(table: Table) -> Any:
    (column,) = table.primary_key.columns
    return column


def _condition(table: Table, rule: RetentionRule, cutoff: datetime) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = [table.c[rule.clock] < cutoff]
    conditions += [table.c[column].in_(values) for column, values in rule.where]
    if rule.action == ANONYMISE:
        # Only rows still holding something: this is what makes a second run a no-op.
        conditions.append(or_(*(table.c[c].is_not(None) for c in rule.anonymise)))
    if table.name == "consents":
        # A proof is kept while a visit it allowed is kept (check_settings makes this moot).
        conditions.append(~exists().where(Visit.consent_id == table.c.id))
    return and_(*conditions)


def _apply(rule: RetentionRule, cutoff: datetime, *, dry_run: bool,
           batch_size: int) -> dict[str, int]:
    table = _table(rule.table)
    if rule.key == "audit_log.entries":
        return _prune_audit(cutoff, dry_run=dry_run, batch_size=batch_size)
    condition = _condition(table, rule, cutoff)
    if dry_run:
        count = db.session.scalar(select(func.count()).select_from(table).where(condition))
        return {table.name: count or 0}
    pk, counts = _pk(table), {table.name: 0}
    if rule.key == "analytics.pageviews" and partitions.is_partitioned(db.engine):
        counts[table.name] = _drop_partitions(table, condition, cutoff)
    while True:
        ids = db.session.scalars(select(pk).where(condition).order_by(pk)
                                 .limit(batch_size)).all()
        if not ids:
            return counts
        # The condition again beside the ids: on PostgreSQL pageviews have no index on their
        # id, and its time bound lets the planner use the time index and skip partitions.
        batch = and_(pk.in_(ids), condition)
        if rule.action == ANONYMISE:
            db.session.execute(update(table).where(batch)
                               .values({column: None for column in rule.anonymise}))
            counts[table.name] += len(ids)
        else:
            for name, n in delete_rows(table, batch).items():
                counts[name] = counts.get(name, 0) + n
        db.session.commit()


def _drop_partitions(table: Table, condition: ColumnElement[bool], cutoff: datetime) -> int:
    """Drop the monthly pageview partitions past the period (PostgreSQL); rows dropped."""
    expired = db.session.scalar(select(func.count()).select_from(table).where(condition)) or 0
    # End our transaction first: DROP TABLE waits for every lock on the table, ours included.
    db.session.commit()
    if partitions.drop_expired(db.engine, cutoff):
        runtime.ingest().forget_pages()
    remaining = db.session.scalar(select(func.count()).select_from(table).where(condition))
    return expired - (remaining or 0)


def _prune_audit(cutoff: datetime, *, dry_run: bool, batch_size: int) -> dict[str, int]:
    """Drop entries older than the period after anchoring the chain past them."""
    anchor = audit.prune_candidates(cutoff)
    if anchor is None:
        return {"audit_log": 0}
    through_seq, through_hash = anchor
    old = AuditEntry.seq <= through_seq
    if dry_run:
        return {"audit_log": db.session.scalar(select(func.count()).where(old)) or 0}
    # The anchor first: a crash half-way leaves a prefix that verify() still accepts.
    audit.record(None, audit.PRUNED, "audit_log",
                 {"through_seq": through_seq, "through_hash": through_hash})
    db.session.commit()
    table, removed = AuditEntry.__table__, 0
    while True:
        ids = db.session.scalars(select(AuditEntry.id).where(old).order_by(AuditEntry.seq)
                                 .limit(batch_size)).all()
        if not ids:
            return {"audit_log": removed}
        removed += db.session.execute(table.delete().where(table.c.id.in_(ids))).rowcount
        db.session.commit()


def run(*, now: datetime, dry_run: bool = False, actor: User | None = None,
        batch_size: int | None = None) -> RunReport:
    """Apply every retention rule of the register as of `now`; record the run."""
    config = current_app.config
    register.check_settings(config)
    batch_size = batch_size or int(config["TRACKER_RETENTION_BATCH_SIZE"])
    record = RetentionRun(started_at=now, dry_run=dry_run, status=RUNNING, counts="{}")
    db.session.add(record)
    db.session.commit()
    run_id, started = record.id, time.monotonic()
    outcomes: list[RuleOutcome] = []
    try:
        for rule in register.rules():
            assert rule.period is not None
            cutoff = rule.period.resolve(config).cutoff(now)
            rows = _apply(rule, cutoff, dry_run=dry_run, batch_size=batch_size)
            outcomes.append(RuleOutcome(rule.key, rule.table, rule.action, cutoff, rows))
    except Exception as exc:
        db.session.rollback()
        failed = db.session.get(RetentionRun, run_id)
        assert failed is not None
        failed.status, failed.error = FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        failed.finished_at = now + timedelta(seconds=time.monotonic() - started)
        if not dry_run:
            audit.record(actor, "retention.failed", f"retention_run:{run_id}",
                         {"error": type(exc).__name__})
        db.session.commit()
        raise
    report = RunReport(run_id, dry_run, outcomes)
    done = db.session.get(RetentionRun, run_id)
    assert done is not None
    done.status = OK
    done.finished_at = now + timedelta(seconds=time.monotonic() - started)
    done.counts = json.dumps({"tables": report.by_table(), "rules": report.by_rule()},
                             sort_keys=True)
    if not dry_run:
        audit.record(actor, "retention.run", f"retention_run:{run_id}",
                     {"tables": report.by_table(), "rules": report.by_rule()})
    db.session.commit()
    return report


@dataclass(frozen=True)
class RetentionStatus:
    """For the dashboard: when retention last succeeded, and whether that is too long ago."""

    last_success_at: datetime | None
    last_run: RetentionRun | None
    overdue: bool
    max_age: timedelta = RETENTION_RUN_MAX_AGE

    @property
    def message(self) -> str:
        if self.last_success_at is None:
            return ("The retention job has never run successfully: schedule it "
                    "(docs/operations.md).")
        when = f"{self.last_success_at:%Y-%m-%d %H:%M} UTC"
        if self.overdue:
            hours = int(self.max_age.total_seconds() // 3600)
            return (f"The retention job last succeeded on {when}, more than {hours} hours "
                    "ago: check its schedule (docs/operations.md).")
        return f"The retention job last succeeded on {when}."


def status(*, now: datetime) -> RetentionStatus:
    """The last successful (non-dry) run and whether it is older than 48 hours."""
    last_success = db.session.scalar(
        select(RetentionRun).where(RetentionRun.status == OK, RetentionRun.dry_run.is_(False))
        .order_by(RetentionRun.finished_at.desc()).limit(1))
    last_run = db.session.scalar(select(RetentionRun).order_by(RetentionRun.id.desc()).limit(1))
    at = last_success.finished_at if last_success else None
    return RetentionStatus(at, last_run, at is None or now - at > RETENTION_RUN_MAX_AGE)


def recent_runs(limit: int = 20) -> list[RetentionRun]:
    return list(db.session.scalars(select(RetentionRun).order_by(RetentionRun.id.desc())
                                   .limit(limit)))


def run_counts(run: RetentionRun) -> dict[str, Any]:
    return json.loads(run.counts or "{}")
