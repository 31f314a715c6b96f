"""Rights requests by e-mail: identity first (code or link), then the DPO decides."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import app_config
from tests.helpers import (
    csrf_token,
    dump_database,
    login,
    mail_links,
    make_user,
    seed_contact,
    seed_recipient,
    seed_subscriber,
)
from tracker import create_app
from tracker.clock import utcnow
from tracker.domain.register import add_months
from tracker.extensions import db
from tracker.models import (
    AuditEntry,
    CampaignRecipient,
    ContactMessage,
    ErasureRecord,
    PrivacyRequest,
    Subscriber,
    VerificationCode,
)
from tracker.services import audit, privacy, retention, rights

ANA = "ana@example.org"


@pytest.fixture
def app(database_url, tmp_path, dns_server, smtp_server):
    app = create_app(app_config(database_url, tmp_path, TRACKER_SMTP_URL=smtp_server.url,
                                TRACKER_DNS_SERVERS=[dns_server.address],
                                TRACKER_PUBLIC_URL="http://localhost"))
    app.smtp = smtp_server
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def ask(client, app, kind: str = "access", email: str = ANA, details: str = ""):
    """Fill the public form; return the request and what the e-mail carried."""
    response = client.post("/privacy/requests", data={"kind": kind, "email": email,
                                                      "details": details})
    assert response.status_code == 302, response.get_data(as_text=True)
    public_id = response.headers["Location"].split("/")[-2]
    message = app.smtp.inbox.to(email.lower())[-1]
    code = re.search(r"code ?: (\d{6})", message.get_body(("plain",)).get_content()).group(1)
    link = next(link for link in mail_links(message) if "/confirm/" in link)
    return rights.find(public_id), code, link


def confirm_with_code(client, request, code: str):
    return client.post(f"/privacy/requests/{request.public_id}/verify", data={"code": code})


def dpo_client(app):
    make_user("dpo@amniotic.studio", "dpo")
    staff = app.test_client()
    assert login(staff, "dpo@amniotic.studio").status_code == 302
    return staff


def decide(staff, request_id: int, decision: str, note: str = ""):
    token = csrf_token(staff, f"/staff/privacy/requests/{request_id}")
    return staff.post(f"/staff/privacy/requests/{request_id}/{decision}",
                      data={"note": note, "csrf_token": token})


def test_access_request_end_to_end(client, app):
    seed_contact("Ana@Example.org", utcnow(), "Pouvez-vous refaire notre logo ?")
    seed_recipient(seed_subscriber(ANA, utcnow()), utcnow())
    seed_contact("bob@example.org", utcnow(), "Message de Bob")
    request, code, _ = ask(client, app)
    assert request.status == "unverified" and request.email == ANA
    assert confirm_with_code(client, request, code).status_code == 302
    db.session.refresh(request)
    assert request.status == "pending"
    assert request.due_at == add_months(request.verified_at, 1)

    staff = dpo_client(app)
    queue = staff.get("/staff/privacy/requests").get_data(as_text=True)
    assert f">{request.id}<" in queue and ANA not in queue  # listing discloses no address
    detail = staff.get(f"/staff/privacy/requests/{request.id}").get_data(as_text=True)
    assert ANA in detail
    assert db.session.scalar(select(AuditEntry).filter_by(action="privacy_request.read"))
    assert decide(staff, request.id, "approve").status_code == 302

    answer = app.smtp.inbox.to(ANA)[-1]
    link = next(link for link in mail_links(answer) if "/export?token=" in link)
    download = client.get(link.removeprefix("http://localhost"))
    assert download.status_code == 200
    export = json.loads(download.data)
    assert export["email"] == ANA
    assert [m["message"] for m in export["contact_messages"]] == \
        ["Pouvez-vous refaire notre logo ?"]
    assert export["subscribers"][0]["email"] == ANA
    assert "token_sha256" not in export["subscribers"][0]
    assert export["campaign_recipients"][0]["open_count"] == 1
    assert export["opposition_list"] == {"listed": False}
    assert "Bob" not in download.get_data(as_text=True)
    assert staff.get(f"/staff/privacy/requests/{request.id}/export").status_code == 200
    assert db.session.scalar(select(AuditEntry).filter_by(action="privacy_request.export_read"))
    token = link.split("token=")[1]
    # Downloadable for 5 days, then gone (the retention job also deletes it).
    later = utcnow() + timedelta(days=5, minutes=1)
    with pytest.raises(rights.RequestError):
        rights.requester_export(request.public_id, token, now=later)
    retention.run(now=later)
    db.session.refresh(request)
    assert request.export_json is None
    assert client.get(link.removeprefix("http://localhost")).status_code == 410
    assert audit.verify().ok


def test_nothing_is_disclosed_before_verification(client, app):
    request, _, _ = ask(client, app)
    staff = dpo_client(app)
    assert f">{request.id}<" not in staff.get("/staff/privacy/requests").get_data(as_text=True)
    assert staff.get(f"/staff/privacy/requests/{request.id}").status_code == 404
    with pytest.raises(rights.RequestError):
        rights.approve(make_user("dpo2@amniotic.studio", "dpo"), request.id, now=utcnow())


def test_three_wrong_codes_then_even_the_right_one_is_refused(client, app):
    request, code, link = ask(client, app)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    pages = [confirm_with_code(client, request, wrong) for _ in range(3)]
    assert [p.status_code for p in pages] == [400, 400, 400]
    assert "2 attempt(s) left" in pages[0].get_data(as_text=True)
    fourth = confirm_with_code(client, request, code)
    assert fourth.status_code == 400 and "Too many wrong codes" in fourth.get_data(as_text=True)
    assert client.post(link.removeprefix("http://localhost")).status_code == 400
    db.session.refresh(request)
    assert request.status == "unverified"


def test_an_expired_code_is_refused(client, app):
    request, code, _ = ask(client, app)
    with pytest.raises(rights.VerificationFailed, match="expired"):
        rights.verify_code(request.public_id, code, now=utcnow() + timedelta(minutes=10))
    assert rights.verify_code(request.public_id, code, now=utcnow()).status == "pending"


def test_the_link_works_once_and_a_replay_is_refused(client, app):
    request, _, link = ask(client, app)
    path = link.removeprefix("http://localhost")
    assert client.get(path).status_code == 200  # showing the button uses nothing up
    assert client.post(path).status_code == 302
    replay = client.post(path)
    assert replay.status_code == 400 and "already used" in replay.get_data(as_text=True)
    db.session.refresh(request)
    assert request.status == "pending"


def test_a_forged_or_expired_link_is_refused(client, app):
    request, _, link = ask(client, app)
    assert client.post(link.removeprefix("http://localhost")[:-2] + "xx").status_code == 400
    token = link.rsplit("/", 1)[1]
    with pytest.raises(rights.VerificationFailed):
        rights.verify_link(token, now=utcnow() + timedelta(minutes=11))


def test_the_code_is_stored_only_as_an_hmac(client, app):
    request, code, _ = ask(client, app)
    row = db.session.scalar(select(VerificationCode).filter_by(request_id=request.id))
    assert re.fullmatch(r"[0-9a-f]{64}", row.code_hmac)
    assert code not in " ".join(str(v) for v in (row.code_hmac, row.link_nonce))
    assert f"'{code}'" not in dump_database()


def test_erasure_removes_the_address_from_every_table(client, app):
    seed_contact("ANA@example.org", utcnow())
    subscriber = seed_subscriber(ANA, utcnow())
    copy = seed_recipient(subscriber, utcnow())
    seed_subscriber(ANA, utcnow(), pending=True)
    seed_contact("bob@example.org", utcnow())
    request, code, _ = ask(client, app, "erasure")
    confirm_with_code(client, request, code)
    staff = dpo_client(app)
    decide(staff, request.id, "approve")
    rest = _without_request_and_audit(dump_database())
    assert "ana@example.org" not in rest.lower()
    assert "bob@example.org" in rest
    assert db.session.get(CampaignRecipient, copy.id).subscriber_id is None
    record = db.session.scalar(select(ErasureRecord).filter_by(request_id=request.id))
    assert json.loads(record.counts) == {"contact_messages": 1, "subscribers": 1,
                                         "subscription_requests": 1}
    assert "effacées" in app.smtp.inbox.to(ANA)[-1].get_body(("plain",)).get_content()


def _without_request_and_audit(dump: str) -> str:
    # The request itself keeps the address until it is anonymised (1 year), as the register
    # says; staff addresses are in the audit log.
    return "\n".join(line for line in dump.splitlines()
                     if not line.startswith(("privacy_requests:", "audit_log:", "users:")))


def test_objection_puts_the_address_on_the_opposition_list(client, app):
    seed_subscriber(ANA, utcnow())
    seed_contact(ANA, utcnow())
    request, code, _ = ask(client, app, "objection")
    confirm_with_code(client, request, code)
    decide(dpo_client(app), request.id, "approve")
    assert privacy.is_opposed("  Ana@Example.org ")
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    # Marketing ends; the customer relationship (the message) is another processing.
    assert db.session.scalar(select(func.count()).select_from(ContactMessage)) == 1


def test_a_refusal_needs_its_reason_and_sends_it(client, app):
    request, code, _ = ask(client, app, "erasure")
    confirm_with_code(client, request, code)
    staff = dpo_client(app)
    page = decide(staff, request.id, "deny", "  ")
    assert "needs its reason" in staff.get(page.headers["Location"]).get_data(as_text=True)
    db.session.refresh(request)
    assert request.status == "pending"
    decide(staff, request.id, "deny", "Nous devons conserver ces factures (art. L123-22).")
    db.session.refresh(request)
    assert request.status == "denied"
    assert "L123-22" in app.smtp.inbox.to(ANA)[-1].get_body(("plain",)).get_content()
    entry = db.session.scalar(select(AuditEntry).filter_by(action="privacy_request.denied"))
    assert entry.actor_label == "dpo@amniotic.studio"


def test_a_rectification_is_approved_with_what_was_corrected(client, app):
    request, code, _ = ask(client, app, "rectification", details="Mon adresse a changé")
    confirm_with_code(client, request, code)
    staff = dpo_client(app)
    decide(staff, request.id, "approve")
    db.session.refresh(request)
    assert request.status == "pending"
    decide(staff, request.id, "approve", "Adresse corrigée dans le message du 3 mars.")
    db.session.refresh(request)
    assert request.status == "approved" and "corrigée" in request.reason


def test_overdue_requests_stand_out_in_the_queue(client, app):
    request, code, _ = ask(client, app)
    rights.verify_code(request.public_id, code, now=utcnow() - timedelta(days=40))
    queue = dpo_client(app).get("/staff/privacy/requests").get_data(as_text=True)
    assert "(overdue)" in queue


def test_without_mail_nothing_is_kept(database_url, tmp_path, dns_server):
    app = create_app(app_config(database_url, tmp_path, TRACKER_DNS_SERVERS=[dns_server.address]))
    with app.app_context():
        page = app.test_client().post("/privacy/requests", data={"kind": "access",
                                                                 "email": ANA})
        assert page.status_code == 200 and "could not send" in page.get_data(as_text=True)
        assert db.session.scalar(select(func.count()).select_from(PrivacyRequest)) == 0
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize(("data", "message"), [
    ({"kind": "access", "email": "not an address"}, "not an e-mail address"),
    ({"kind": "rectification", "email": ANA}, "say what should be corrected"),
    ({"kind": "everything", "email": ANA}, "Not a valid choice"),
])
def test_invalid_forms_are_explained(client, data, message):
    page = client.post("/privacy/requests", data=data)
    assert page.status_code == 200 and message in page.get_data(as_text=True)


def test_public_pages_set_no_cookie_and_refuse_other_sites(client):
    assert not client.get("/privacy/requests").headers.getlist("Set-Cookie")
    assert not client.get("/privacy/").headers.getlist("Set-Cookie")
    forged = client.post("/privacy/requests", data={"kind": "access", "email": ANA},
                         headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403


def test_one_code_per_address_at_a_time(client, app):
    ask(client, app)
    again = client.post("/privacy/requests", data={"kind": "erasure", "email": ANA})
    assert again.status_code == 200 and "less than 10 minutes ago" in again.get_data(as_text=True)
    assert len(app.smtp.inbox.to(ANA)) == 1
    with pytest.raises(rights.RequestError):
        rights.open_request("access", ANA, "", lang="fr", now=utcnow() + timedelta(minutes=9))
    later = rights.open_request("access", ANA, "", lang="fr", now=utcnow() + timedelta(minutes=11))
    assert later.status == "unverified" and len(app.smtp.inbox.to(ANA)) == 2
