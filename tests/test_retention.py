"""The retention job applies the register's periods: batched, idempotent, audited, recorded."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from tests.conftest import app_config
from tests.helpers import (
    dump_database,
    hex32,
    seed_consent,
    seed_contact,
    seed_recipient,
    seed_subscriber,
    seed_visit,
    stale_rows,
)
from tracker import create_app
from tracker.domain.register import add_months
from tracker.extensions import db
from tracker.models import (
    AuditEntry,
    AuthorityLookup,
    CampaignRecipient,
    Consent,
    ContactMessage,
    OppositionEntry,
    Pageview,
    PrivacyRequest,
    RetentionRun,
    Subscriber,
    SubscriptionRequest,
    VerificationCode,
    Visit,
)
from tracker.services import retention

NOW = datetime(2026, 11, 1, 12, 0)


def months_ago(months: int, days: int = 0) -> datetime:
    return add_months(NOW, -months) - timedelta(days=days)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def request_row(status: str, at: datetime, **fields) -> PrivacyRequest:
    row = PrivacyRequest(public_id=hex32(), kind=fields.pop("kind", "access"),
                         email=fields.pop("email", "ana@example.org"), details="x",
                         lang="fr", status=status, created_at=at, **fields)
    db.session.add(row)
    db.session.flush()
    db.session.add(VerificationCode(request_id=row.id, code_hmac="0" * 64,
                                    link_nonce=hex32(), attempts=0, created_at=at,
                                    expires_at=at + timedelta(minutes=10)))
    db.session.commit()
    return row


def lookup_row(at: datetime) -> None:
    db.session.add(AuthorityLookup(created_at=at, actor_id=1, authority="Police",
                                   legal_reference="CPP art. 60-1", network="192.0.2.0/24",
                                   starts_at=at, ends_at=at, result_count=0,
                                   results_sha256="0" * 64))
    db.session.commit()


@pytest.fixture
def world(app):
    """One row just past each period and one just inside it."""
    ancient = seed_consent(hex32(), months_ago(20))
    seed_visit(ancient, months_ago(20), dns_name="ancient.example")
    old = seed_consent(hex32(), months_ago(14))  # proof younger than 19 months: kept
    seed_visit(old, months_ago(14), dns_name="old.example")
    recent = seed_consent(hex32(), months_ago(1))
    seed_visit(recent, months_ago(12, 27), dns_name="recent.example")  # 13 months - 1 day
    seed_contact("old@example.org", months_ago(12, 1))
    seed_contact("new@example.org", months_ago(11))
    seed_subscriber("late@example.org", NOW - timedelta(days=31), pending=True)
    seed_subscriber("soon@example.org", NOW - timedelta(days=29), pending=True)
    loyal = seed_subscriber("loyal@example.org", months_ago(60))  # until unsubscription
    seed_recipient(loyal, months_ago(14))
    seed_recipient(loyal, months_ago(12))
    db.session.add_all([
        OppositionEntry(email_hmac="a" * 64, source="objection", created_at=months_ago(37)),
        OppositionEntry(email_hmac="b" * 64, source="objection", created_at=months_ago(35))])
    request_row("unverified", NOW - timedelta(days=2))
    request_row("unverified", NOW - timedelta(hours=1))
    request_row("approved", months_ago(0, 7), decided_at=NOW - timedelta(days=6),
                export_json="{}", export_expires_at=NOW - timedelta(days=1))
    request_row("denied", months_ago(13), decided_at=months_ago(12, 1), reason="no")
    request_row("pending", months_ago(13), verified_at=months_ago(13))
    lookup_row(months_ago(12, 1))
    lookup_row(months_ago(11))
    return {"visits": 2, "pageviews": 4, "consents": 1, "contact_messages": 1,
            "subscription_requests": 1, "opposition_list": 1, "campaign_recipients": 1,
            "privacy_requests": 1 + 1 + 1, "verification_codes": 1 + 3,
            "authority_lookups": 1}


def test_a_run_removes_exactly_what_is_past_its_period(app, world):
    assert any(stale_rows(NOW, app.config).values())
    report = retention.run(now=NOW)
    assert {k: v for k, v in report.by_table().items() if v} == world
    assert stale_rows(NOW, app.config) == dict.fromkeys(stale_rows(NOW, app.config), 0)
    dump = dump_database()
    assert "ancient.example" not in dump and "old.example" not in dump
    assert "recent.example" in dump and "new@example.org" in dump
    assert "old@example.org" not in dump and "late@example.org" not in dump
    assert count(Subscriber) == 1 and count(SubscriptionRequest) == 1
    assert count(Consent) == 2 and count(Visit) == 1 and count(Pageview) == 2
    # Anonymised, not deleted: the statistics stay, nobody's data does.
    recipients = db.session.scalars(select(CampaignRecipient).order_by(CampaignRecipient.id))
    assert [r.subscriber_id is None for r in recipients] == [True, False]
    handled = db.session.scalars(select(PrivacyRequest).where(
        PrivacyRequest.status.in_(["approved", "denied"])).order_by(PrivacyRequest.id)).all()
    assert [(r.email is None, r.export_json is None) for r in handled] == \
        [(False, True), (True, True)]
    assert db.session.scalar(select(PrivacyRequest).filter_by(status="pending")).email


def test_a_second_run_changes_nothing(app, world):
    retention.run(now=NOW)
    before = dump_database()
    again = retention.run(now=NOW)
    assert not any(again.by_table().values())
    assert _without_job_tables(dump_database()) == _without_job_tables(before)


def _without_job_tables(dump: str) -> str:
    return "\n".join(line for line in dump.splitlines()
                     if not line.startswith(("audit_log:", "audit_head:", "retention_runs:")))


def test_tiny_batches_give_the_same_result(app, world):
    report = retention.run(now=NOW, batch_size=1)
    assert {k: v for k, v in report.by_table().items() if v} == world
    assert not any(stale_rows(NOW, app.config).values())


def test_a_dry_run_counts_and_changes_nothing(app, world):
    before = _without_job_tables(dump_database())
    dry = retention.run(now=NOW, dry_run=True)
    assert _without_job_tables(dump_database()) == before
    # Cascaded rows (pageviews of deleted visits) are counted by the rule that owns them.
    assert dry.by_rule()["analytics.visits"] == 2 and dry.by_rule()["contact_form.messages"] == 1
    assert not db.session.scalars(select(AuditEntry).filter_by(action="retention.run")).all()
    assert db.session.scalar(select(RetentionRun)).dry_run


def test_counts_per_table_go_to_the_audit_log(app, world):
    report = retention.run(now=NOW)
    entry = db.session.scalar(select(AuditEntry).filter_by(action="retention.run"))
    details = json.loads(entry.details)
    assert details["tables"] == report.by_table()
    assert entry.actor_label == "system" and entry.target == f"retention_run:{report.run_id}"


def test_the_analytics_period_follows_the_setting(database_url, tmp_path, dns_server):
    app = create_app(app_config(database_url, tmp_path, TRACKER_ANALYTICS_RETENTION_MONTHS=2,
                                TRACKER_CONSENT_PROOF_RETENTION_MONTHS=8))
    with app.app_context():
        consent = seed_consent(hex32(), months_ago(3))
        seed_visit(consent, months_ago(3))
        seed_visit(consent, months_ago(1))
        retention.run(now=NOW)
        assert count(Visit) == 1 and count(Consent) == 1
        db.session.remove()
        db.engine.dispose()


def test_status_warns_after_48_hours_without_a_successful_run(app):
    assert retention.status(now=NOW).overdue
    assert "never run" in retention.status(now=NOW).message
    retention.run(now=NOW, dry_run=True)
    assert retention.status(now=NOW).overdue  # a dry run deletes nothing
    retention.run(now=NOW)
    assert not retention.status(now=NOW + timedelta(hours=47)).overdue
    late = retention.status(now=NOW + timedelta(hours=49))
    assert late.overdue and "more than 48 hours ago" in late.message


def test_a_failed_run_is_recorded_and_audited(app, world):
    # A table the job cannot reach (renamed for the test): the failure must show.
    db.session.execute(text("ALTER TABLE authority_lookups RENAME TO authority_lookups_away"))
    db.session.commit()
    try:
        with pytest.raises(Exception, match="authority_lookups"):
            retention.run(now=NOW)
    finally:
        db.session.rollback()
        db.session.execute(text("ALTER TABLE authority_lookups_away RENAME TO authority_lookups"))
        db.session.commit()
    run = db.session.scalar(select(RetentionRun))
    assert run.status == "failed" and "authority_lookups" in run.error
    assert db.session.scalar(select(AuditEntry).filter_by(action="retention.failed"))
    assert retention.status(now=NOW).overdue
    assert count(ContactMessage) == 1  # rules before the failure were applied and kept


def test_cli_dry_run_prints_each_rule(app, world):
    result = app.test_cli_runner().invoke(args=["retention", "run", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "(dry run)" in result.output
    # The CLI runs at the real clock while the world is dated from NOW, so how many
    # messages are due depends on today's date; that each rule is printed does not.
    assert "analytics.visits" in result.output and "contact_form.messages" in result.output
    assert count(ContactMessage) == 2 and count(VerificationCode) == 5


def test_cli_status_exit_code_tells_monitoring(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["retention", "status"]).exit_code == 1
    assert runner.invoke(args=["retention", "run"]).exit_code == 0
    ok = runner.invoke(args=["retention", "status"])
    assert ok.exit_code == 0 and "last succeeded" in ok.output


def test_the_privacy_desk_shows_the_last_run(client, app):
    from tests.helpers import login, make_user

    make_user("dpo@amniotic.studio", "dpo")
    login(client, "dpo@amniotic.studio")
    assert "never run successfully" in client.get("/staff/privacy/").get_data(as_text=True)
    retention.run(now=NOW - timedelta(days=3))
    page = client.get("/staff/privacy/").get_data(as_text=True)
    assert "more than 48 hours ago" in page and 'role="alert"' in page


def test_expired_pageview_months_are_dropped_whole_on_postgresql(app):
    from tracker.services import partitions

    old = months_ago(20)
    partitioned = partitions.is_partitioned(db.engine)
    partitions.Partitions().ensure(db.engine, [partitions.month_of(old)])
    seed_visit(seed_consent(hex32(), old), old, pageviews=3)
    name = partitions.partition_name(partitions.month_of(old))
    catalog = "SELECT count(*) FROM pg_class WHERE relname = :name"
    if partitioned:
        assert db.session.scalar(text(catalog), {"name": name}) == 1
    report = retention.run(now=NOW)
    assert report.by_table()["pageviews"] == 3 and count(Pageview) == 0
    if partitioned:
        assert db.session.scalar(text(catalog), {"name": name}) == 0
