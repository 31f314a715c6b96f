"""A hypothesis state machine over consent, visits, erasures, e-mail requests, staff reads,
retention runs and tampering with the audit log, on SQLite and PostgreSQL.

Invariants:
- an erased visitor's id, IP address and DNS name appear in no table, no report and no
  other visitor's export afterwards (also when their events were still in the spool);
- an address erased on request appears in no table but its own request record;
- right after a retention run, no row is older than its register period;
- every staff read of personal data leaves an audit entry by that member of staff;
- the audit log verifies, and stops verifying as soon as any row is edited or deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, func, select, update

from tests.conftest import app_config
from tests.helpers import (
    SITE,
    beacon,
    csrf_token,
    decide,
    dump_database,
    hex32,
    login,
    make_user,
    seed_contact,
    stale_rows,
)
from tracker import create_app
from tracker.clock import utcnow
from tracker.extensions import db
from tracker.models import AuditEntry, PrivacyRequest, User
from tracker.services import audit, reports, retention, rights, runtime, staff

# Each visitor gets an address of its own (the first three have reverse-DNS names on the
# test DNS server), so an erased visitor's address can be looked for anywhere.
ADDRESSES = [("89.160.20.112", "host-89-160-20-112.bredband2.se"),
             ("192.0.2.7", "mixed-case.example.net"), ("2001:db8::1", "v6.example.org"),
             ("198.51.100.4", None), ("198.51.100.5", None), ("198.51.100.6", None)]
EMAILS = ["ana@example.org", "bob@example.org", "chloe@example.org"]
KEPT = ("users", "api_tokens")  # staff accounts survive between examples


@pytest.fixture
def app(database_url, tmp_path, dns_server, smtp_server):
    app = create_app(app_config(
        database_url, tmp_path, TRACKER_DNS_SERVERS=[dns_server.address],
        TRACKER_SMTP_URL=smtp_server.url, TRACKER_PRIVACY_RATE_LIMIT="100000 per minute",
        TRACKER_CONSENT_RATE_LIMIT="100000 per minute",
        TRACKER_SITE_ORIGINS=[SITE]))
    app.smtp = smtp_server
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@dataclass
class Visitor:
    vid: str
    consent: dict
    ip: str
    dns: str | None
    erased: bool = False
    refused: bool = False
    forgotten: bool = False  # its consent proof was past its period at a retention run


def _reset() -> None:
    for table in reversed(db.metadata.sorted_tables):
        if table.name not in KEPT:
            db.session.execute(table.delete())
    db.session.commit()
    runtime.ingest().drain()  # leftovers of the previous example: their consents are gone
    runtime.ingest().forget_pages()


def _staff_entries(email: str) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.actor_label == email)) or 0


class PrivacyMachine(RuleBasedStateMachine):
    """Bound to one app and its signed-in staff clients by `test_privacy_state_machine`."""

    app = client = staff_clients = analyst_token = None

    @initialize()
    def start(self) -> None:
        _reset()
        self.visitors: list[Visitor] = []
        self.erased_emails: set[str] = set()
        self.dpo = db.session.scalar(select(User).filter_by(role="dpo"))
        # Two visitors with a stored visit each, so that every rule has something to act on.
        for location in (True, False):
            self.new_visitor(location)
            self.pageview(len(self.visitors) - 1, "/")
        self.drain()

    # -- visitors ----------------------------------------------------------------------------

    @precondition(lambda self: len(self.visitors) < len(ADDRESSES))
    @rule(location=st.booleans())
    def new_visitor(self, location: bool) -> None:
        ip, dns = ADDRESSES[len(self.visitors)]
        consent = decide(self.client, analytics=True, location=location, visitor_id=hex32())
        self.visitors.append(Visitor(consent["visitor_id"], consent, ip, dns))

    @precondition(lambda self: self.visitors)
    @rule(index=st.integers(0, 5), path=st.sampled_from(["/", "/projets/", "/journal/"]))
    def pageview(self, index: int, path: str) -> None:
        visitor = self.visitors[index % len(self.visitors)]
        status = beacon(self.client, visitor.consent, path=path, ip=visitor.ip).status_code
        gone = visitor.erased or visitor.refused or visitor.forgotten
        assert status == (403 if gone else 202)

    @rule()
    def drain(self) -> None:
        runtime.ingest().drain()

    @precondition(lambda self: any(not v.erased for v in self.visitors))
    @rule(index=st.integers(0, 5))
    def refuse(self, index: int) -> None:
        live = [v for v in self.visitors if not v.erased]
        visitor = live[index % len(live)]
        decide(self.client, analytics=False, visitor_id=visitor.vid)
        visitor.refused = True

    @precondition(lambda self: any(not v.erased for v in self.visitors))
    @rule(index=st.integers(0, 5))
    def erase(self, index: int) -> None:
        live = [v for v in self.visitors if not v.erased]
        visitor = live[index % len(live)]
        response = self.client.post("/api/me/erase", json={"visitor_id": visitor.vid},
                                    headers={"Origin": SITE})
        assert response.status_code == 200
        visitor.erased = True

    # -- e-mail requests ---------------------------------------------------------------------

    @rule(email=st.sampled_from(EMAILS))
    def contact_message(self, email: str) -> None:
        seed_contact(email, utcnow())
        self.erased_emails.discard(email)

    @rule(email=st.sampled_from(EMAILS), kind=st.sampled_from(["erasure", "access"]))
    def email_request(self, email: str, kind: str) -> None:
        request = rights.open_request(kind, email, "", lang="en", now=utcnow())
        body = self.app.smtp.inbox.to(email)[-1].get_body(("plain",)).get_content()
        code = re.search(r"code: (\d{6})", body).group(1)
        rights.verify_code(request.public_id, code, now=utcnow())
        rights.approve(self.dpo, request.id, now=utcnow())
        if kind == "erasure":
            self.erased_emails.add(email)
        else:
            assert f'"email": "{email}"' in (request.export_json or "")

    # -- staff -------------------------------------------------------------------------------

    @rule(read=st.sampled_from(["consents", "lookup", "inbox", "subscribers", "audit",
                                "requests"]))
    def staff_read(self, read: str) -> None:
        role = {"inbox": "customer_relations", "subscribers": "marketing"}.get(read, "dpo")
        client, email = self.staff_clients[role], f"{role}@amniotic.studio"
        before = _staff_entries(email)
        if read == "lookup":
            response = client.post("/staff/privacy/lookup", data={
                "network": "198.51.100.0/24", "starts_at": "2020-01-01T00:00",
                "ends_at": "2020-12-31T00:00", "authority": "Police",
                "legal_reference": "CPP art. 60-1",
                "csrf_token": csrf_token(client, "/staff/privacy/lookup")})
        else:
            request_id = db.session.scalar(select(func.max(PrivacyRequest.id)))
            if read == "requests" and request_id is None:
                return
            path = {"consents": f"/staff/privacy/consents?q={hex32()}",
                    "inbox": "/staff/inbox/", "subscribers": "/staff/newsletter/subscribers",
                    "audit": "/staff/privacy/audit",
                    "requests": f"/staff/privacy/requests/{request_id}"}[read]
            response = client.get(path)
        assert response.status_code == 200, (read, response.status_code)
        assert _staff_entries(email) > before, f"{read} by {role} left no audit entry"

    @rule(months=st.sampled_from([0, 7, 14, 20, 40]))
    def retention_run(self, months: int) -> None:
        started = utcnow()
        now = started + timedelta(days=31 * months)
        retention.run(now=now, batch_size=3)
        assert not any(stale_rows(now, self.app.config, written_before=started).values())
        proofs = self.app.config["TRACKER_CONSENT_PROOF_RETENTION_MONTHS"]
        for visitor in self.visitors:
            visitor.forgotten |= 31 * months >= 31 * proofs

    @precondition(lambda self: db.session.scalar(select(func.count(AuditEntry.id))))
    @rule(index=st.integers(0, 50), how=st.sampled_from(["edit", "delete", "reorder"]))
    def tamper_with_the_audit_log(self, index: int, how: str) -> None:
        seqs = db.session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
        seq = seqs[index % len(seqs)]
        if how == "edit":
            db.session.execute(update(AuditEntry).where(AuditEntry.seq == seq)
                               .values(details=AuditEntry.details + " "))
        elif how == "delete":
            db.session.execute(delete(AuditEntry).where(AuditEntry.seq == seq))
        else:
            db.session.execute(update(AuditEntry).where(AuditEntry.seq == seq)
                               .values(seq=-seq))
        assert not audit.verify().ok, f"{how} of entry {seq} went unnoticed"
        db.session.rollback()
        assert audit.verify().ok

    @rule()
    def look_everywhere(self) -> None:
        """Reports and every live visitor's export hold nothing of an erased visitor."""
        texts = [self.client.get(f"/api/reports/{name}", headers={
            "Authorization": f"Bearer {self.analyst_token}"}).get_data(as_text=True)
            for name in reports.REPORTS]
        texts += [self.client.post("/api/me/export", json={"visitor_id": v.vid},
                                   headers={"Origin": SITE}).get_data(as_text=True)
                  for v in self.visitors if not v.erased]
        texts = [text.lower() for text in texts]
        for visitor in self.visitors:
            if visitor.erased:
                for trace in self._traces(visitor):
                    assert not any(trace.lower() in text for text in texts), trace

    # -- invariants --------------------------------------------------------------------------

    @staticmethod
    def _traces(visitor: Visitor) -> list[str]:
        return [visitor.vid, visitor.ip, *([visitor.dns] if visitor.dns else [])]

    @invariant()
    def erased_visitors_leave_no_trace(self) -> None:
        dump = dump_database().lower()
        for visitor in self.visitors:
            if visitor.erased:
                for trace in self._traces(visitor):
                    assert trace.lower() not in dump, f"{trace} survived its erasure"

    @invariant()
    def erased_addresses_are_gone(self) -> None:
        dump = "\n".join(line for line in dump_database().splitlines()
                         if not line.startswith(("privacy_requests:", "audit_log:")))
        for email in self.erased_emails:
            assert email not in dump, f"{email} survived its erasure"

    @invariant()
    def the_audit_log_verifies(self) -> None:
        assert audit.verify().ok


def test_privacy_state_machine(app, client):
    users = {role: make_user(f"{role}@amniotic.studio", role)
             for role in ("dpo", "customer_relations", "marketing", "analyst")}
    staff_clients = {}
    for role in ("dpo", "customer_relations", "marketing"):
        staff_clients[role] = app.test_client()
        assert login(staff_clients[role], f"{role}@amniotic.studio").status_code == 302
    PrivacyMachine.app, PrivacyMachine.client = app, client
    PrivacyMachine.staff_clients = staff_clients
    PrivacyMachine.analyst_token = staff.create_token(users["analyst"], "t", now=utcnow())
    run_state_machine_as_test(PrivacyMachine, settings=settings(
        max_examples=12, stateful_step_count=16, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture,
                               HealthCheck.too_slow]))
