"""Newsletter double opt-in through a real SMTP server, the proof it leaves, and opting out."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from tests.helpers import csrf_token, login, mail_links, make_user, submit_public_form
from tracker.clock import utcnow
from tracker.domain.mail import newsletter_wording, sha256
from tracker.extensions import db
from tracker.models import AuditEntry, FormText, OppositionEntry, Subscriber, SubscriptionRequest
from tracker.services import newsletter
from tracker.services.privacy import add_to_opposition_list, opposition_hmac

FORM = "/forms/newsletter?lang=fr"
PUBLIC = "https://tracker.amniotic.studio"


@pytest.fixture
def mail_app(app, smtp_server):
    app.config.update(TRACKER_SMTP_URL=smtp_server.url, TRACKER_PUBLIC_URL=PUBLIC)
    return app


def subscribe(client, email: str, *, open_tracking: bool = False, lang: str = "fr"):
    fields = {"email": email, "newsletter": "yes"}
    if open_tracking:
        fields["open_tracking"] = "yes"
    return submit_public_form(client, f"/forms/newsletter?lang={lang}", fields)


def confirmation_link(smtp_server, email: str) -> str:
    (message,) = smtp_server.inbox.to(email)
    (link,) = [u for u in mail_links(message) if "/confirm/" in u]
    assert link.startswith(PUBLIC + "/forms/newsletter/confirm/")
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def subscribers() -> list[Subscriber]:
    db.session.expire_all()
    return list(db.session.scalars(select(Subscriber)))


def test_double_opt_in_end_to_end(client, mail_app, smtp_server):
    response = subscribe(client, "Lea@Example.org", open_tracking=True)
    assert response.status_code == 303
    assert "Vérifiez votre boîte" in client.get(response.headers["Location"]).get_data(
        as_text=True)
    # Requested, not subscribed: only the confirmation e-mail may go to this address.
    assert subscribers() == []
    (message,) = smtp_server.inbox.to("lea@example.org")
    assert message["Subject"] == "Confirmez votre inscription à la lettre d'Amniotic"
    assert message["From"] == "Amniotic <contact@amniotic.studio>"
    link = confirmation_link(smtp_server, "lea@example.org")
    token = link.split("/confirm/")[1].split("?")[0]

    # A GET (a mail scanner following the link) confirms nothing.
    page = client.get(link)
    assert page.status_code == 200
    assert "Confirmez-vous l&#39;inscription de lea@example.org" in page.get_data(as_text=True)
    assert subscribers() == []

    response = client.post(link)
    assert response.status_code == 200
    assert "Inscription confirmée" in response.get_data(as_text=True)
    (subscriber,) = subscribers()
    assert subscriber.email == "lea@example.org" and subscriber.open_tracking
    # The proof: the exact wording shown, both times, and the token's hash.
    wording = db.session.get(FormText, subscriber.form_version)
    assert wording.content == newsletter_wording("fr")
    assert "J'accepte qu'Amniotic sache si j'ouvre ses lettres" in wording.content
    assert subscriber.token_sha256 == sha256(token)
    assert subscriber.requested_at <= subscriber.confirmed_at
    assert db.session.scalars(select(SubscriptionRequest)).all() == []
    # Following the link again is harmless.
    assert client.post(link).status_code == 200
    assert len(subscribers()) == 1


def test_boxes_start_unticked_and_the_newsletter_box_is_required(client, mail_app,
                                                                 smtp_server):
    page = client.get(FORM).get_data(as_text=True)
    assert "checked" not in page
    response = submit_public_form(client, FORM, {"email": "lea@example.org",
                                                 "open_tracking": "yes"})
    assert response.status_code == 422
    assert "Cochez la case pour vous inscrire." in response.get_data(as_text=True)
    assert smtp_server.inbox.messages == []
    assert db.session.scalars(select(SubscriptionRequest)).all() == []


def test_english_form_records_the_english_wording(client, mail_app, smtp_server):
    assert subscribe(client, "sam@example.org", lang="en").status_code == 303
    (message,) = smtp_server.inbox.to("sam@example.org")
    assert message["Subject"] == "Confirm your subscription to Amniotic's newsletter"
    client.post(confirmation_link(smtp_server, "sam@example.org"))
    (subscriber,) = subscribers()
    assert subscriber.lang == "en" and not subscriber.open_tracking
    assert subscriber.form_version == sha256(newsletter_wording("en"))
    assert subscriber.form_version != sha256(newsletter_wording("fr"))


def test_one_confirmation_mail_per_address_per_interval(client, mail_app, smtp_server):
    for _ in range(3):
        assert subscribe(client, "lea@example.org").status_code == 303
    assert len(smtp_server.inbox.to("lea@example.org")) == 1


def test_forged_and_expired_links_are_refused(client, mail_app, smtp_server):
    subscribe(client, "lea@example.org")
    link = confirmation_link(smtp_server, "lea@example.org")
    forged = link.replace("/confirm/", "/confirm/x")
    assert client.post(forged).status_code == 404
    db.session.execute(update(SubscriptionRequest).values(
        requested_at=SubscriptionRequest.requested_at - timedelta(hours=73)))
    db.session.commit()
    response = client.post(link)
    assert response.status_code == 404
    assert "n&#39;est pas valide ou a expiré" in response.get_data(as_text=True)
    assert subscribers() == []
    # The next request purges it: an unconfirmed address is not kept past its link.
    subscribe(client, "other@example.org")
    assert [r.email for r in db.session.scalars(select(SubscriptionRequest))] == [
        "other@example.org"]


def test_smtp_failure_is_a_clear_error_and_keeps_nothing(client, app):
    app.config["TRACKER_SMTP_URL"] = "smtp://127.0.0.1:1"
    response = subscribe(client, "lea@example.org")
    assert response.status_code == 503
    assert "L&#39;e-mail de confirmation n&#39;a pas pu être envoyé" in response.get_data(
        as_text=True)
    assert db.session.scalars(select(SubscriptionRequest)).all() == []


def test_opposition_blocks_imports_until_a_new_double_opt_in(client, mail_app, smtp_server):
    add_to_opposition_list("lea@example.org", "objection")
    db.session.commit()
    result = newsletter.import_subscribers(["LEA@example.org", "new@example.org", "nope"],
                                           proof="Salon 2026, bulletin signé", now=utcnow())
    assert (result.added, result.opposed, result.invalid) == (1, 1, 1)
    assert [s.email for s in subscribers()] == ["new@example.org"]
    # The person subscribes again through the form: the confirmation is the new opt-in.
    subscribe(client, "lea@example.org")
    client.post(confirmation_link(smtp_server, "lea@example.org"))
    assert {s.email for s in subscribers()} == {"new@example.org", "lea@example.org"}
    assert db.session.get(OppositionEntry, opposition_hmac("lea@example.org")) is None


def test_stop_from_the_command_line(client, mail_app, smtp_server):
    subscribe(client, "lea@example.org")
    client.post(confirmation_link(smtp_server, "lea@example.org"))
    result = mail_app.test_cli_runner().invoke(args=["mail", "stop", " Lea@example.org "])
    assert result.exit_code == 0, result.output
    assert "the subscriber was erased" in result.output
    assert subscribers() == []
    entry = db.session.get(OppositionEntry, opposition_hmac("lea@example.org"))
    assert entry.source == "staff"
    audit = db.session.scalar(select(AuditEntry).filter_by(action="newsletter.stop"))
    assert audit.actor_label == "system" and "lea@" not in audit.details
    bad = mail_app.test_cli_runner().invoke(args=["mail", "stop", "not an address"])
    assert bad.exit_code != 0 and "is not an e-mail address" in bad.output


def test_subscriber_list_is_marketing_only_and_audited(client, mail_app, smtp_server):
    make_user("mk@amniotic.studio", "marketing")
    make_user("cr@amniotic.studio", "customer_relations")
    newsletter.import_subscribers(["lea@example.org"], proof="test", now=utcnow())
    login(client, "cr@amniotic.studio")
    assert client.get("/staff/newsletter/subscribers").status_code == 403
    client = mail_app.test_client()
    login(client, "mk@amniotic.studio")
    page = client.get("/staff/newsletter/subscribers").get_data(as_text=True)
    assert "lea@example.org" in page
    audit = db.session.scalar(select(AuditEntry).filter_by(action="newsletter.subscribers.list"))
    assert audit is not None and audit.actor_label == "mk@amniotic.studio"
    # A "stop" received by phone, recorded from the page.
    token = csrf_token(client, "/staff/newsletter/subscribers")
    client.post("/staff/newsletter/stop", data={"email": "lea@example.org", "csrf_token": token})
    assert subscribers() == []
    assert newsletter.import_subscribers(["lea@example.org"], proof="again", now=utcnow()) \
        .opposed == 1
