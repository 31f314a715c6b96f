"""The contact form (embeddable, cross-origin safe) and the customer-relations inbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.helpers import csrf_token, login, make_user, submit_public_form
from tracker.clock import utcnow
from tracker.domain.mail import issue_form_token
from tracker.extensions import db
from tracker.models import AuditEntry, ContactMessage

FORM = "/forms/contact?lang=fr"
GOOD = {"email": "  Claire@Example.ORG ", "message": "Bonjour,\r\nun devis pour une affiche ?"}


def stored() -> list[ContactMessage]:
    return list(db.session.scalars(select(ContactMessage)))


def audit_trail() -> list[tuple[str, str]]:
    return [(e.action, e.target) for e in db.session.scalars(
        select(AuditEntry).order_by(AuditEntry.seq))]


def test_message_is_stored_and_confirmed(client):
    response = submit_public_form(client, FORM, GOOD)
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "votre message nous est bien parvenu" in page
    (message,) = stored()
    assert message.email == "claire@example.org"
    assert message.message == "Bonjour,\nun devis pour une affiche ?"
    assert message.lang == "fr" and message.handled_at is None


def test_form_is_embeddable_by_the_site_only(client, app):
    response = client.get(FORM)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://amniotic.studio" in csp
    assert "script-src" not in csp and "default-src 'none'" in csp  # no script at all
    page = response.get_data(as_text=True)
    assert 'maxlength="254"' in page and 'maxlength="5000"' in page
    assert "<script" not in page and " on" not in page.replace(" one", "")
    demo = client.get("/contact/").get_data(as_text=True)
    assert 'src="/forms/contact?lang=fr"' in demo


@pytest.mark.parametrize(("fields", "field", "error"), [
    ({"email": ""}, "email", "Ce champ est obligatoire."),
    ({"email": "claire@"}, "email", "Cette adresse e-mail n&#39;est pas valide"),
    ({"email": "claire example@x.org"}, "email", "Cette adresse e-mail n&#39;est pas valide"),
    ({"email": "a" * 250 + "@x.org"}, "email", "trop long (254 caractères au plus)"),
    ({"message": "  \r\n "}, "message", "Ce champ est obligatoire."),
    ({"message": "x" * 5001}, "message", "trop long (5000 caractères au plus)"),
    ({"website": "http://spam.example"}, "_form", "Laissez vide le champ"),
])
def test_bad_input_gives_a_clear_error_per_field(client, fields, field, error):
    response = submit_public_form(client, FORM, {**GOOD, **fields})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert error in page
    if field != "_form":
        assert f'id="{field}-error"' in page and 'aria-invalid="true"' in page
    # What was typed is kept, so nothing has to be typed again (except the trap).
    assert "spam.example" not in page
    assert stored() == []


def test_errors_in_english(client):
    response = submit_public_form(client, "/forms/contact?lang=en", {"email": "x", "message": ""})
    page = response.get_data(as_text=True)
    assert "This e-mail address is not valid" in page and "This field is required." in page


def post_with_token(client, token, origin="http://localhost"):
    return client.post(FORM, data={**GOOD, "token": token, "website": ""},
                       headers={"Origin": origin} if origin else {})


def test_cross_site_post_is_refused(client):
    response = submit_public_form(client, FORM, GOOD, origin="https://evil.example")
    assert response.status_code == 403
    assert "ne peut être envoyé que depuis le site d&#39;Amniotic" in response.get_data(
        as_text=True)
    assert stored() == []


@pytest.mark.parametrize(("token", "status", "error"), [
    ("", 400, "Le formulaire est incomplet"),
    ("contact.1700000000.forged", 400, "n&#39;est pas valide"),
])
def test_missing_or_forged_token_is_refused(client, token, status, error):
    response = post_with_token(client, token, origin=None)
    assert response.status_code == status
    assert error in response.get_data(as_text=True)
    assert stored() == []


def test_expired_or_other_forms_token_is_refused(client, app):
    secret = app.config["SECRET_KEY"]
    old = issue_form_token(secret, "contact", utcnow() - timedelta(hours=13))
    response = post_with_token(client, old)
    assert response.status_code == 400
    assert "Le formulaire a expiré" in response.get_data(as_text=True)
    other = issue_form_token(secret, "newsletter", utcnow())
    assert post_with_token(client, other).status_code == 400
    assert post_with_token(client, issue_form_token("not-our-key", "contact", utcnow())) \
        .status_code == 400
    assert stored() == []
    assert post_with_token(client, issue_form_token(secret, "contact", utcnow())) \
        .status_code == 303


def test_rate_limit_per_ip(client, app):
    app.config["TRACKER_FORM_RATE_LIMIT"] = "2 per minute"
    for _ in range(2):
        assert submit_public_form(client, FORM, GOOD).status_code == 303
    response = submit_public_form(client, FORM, GOOD)
    assert response.status_code == 429
    assert "Trop d&#39;envois depuis votre connexion" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    # Another client address has its own allowance.
    other = submit_public_form(client, FORM, GOOD, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 303
    assert len(stored()) == 3


@pytest.fixture
def inbox(client):
    make_user("cr@amniotic.studio", "customer_relations")
    make_user("mk@amniotic.studio", "marketing")
    for text in ("Premier message", "Second message"):
        submit_public_form(client, FORM, {**GOOD, "message": text})
    return sorted(m.id for m in stored())


def test_inbox_is_for_customer_relations_only(client, inbox):
    assert client.get("/staff/inbox/").status_code == 302  # to the sign-in page
    login(client, "mk@amniotic.studio")
    assert client.get("/staff/inbox/").status_code == 403
    assert client.get(f"/staff/inbox/{inbox[0]}").status_code == 403
    assert not [a for a in audit_trail() if a[0].startswith("contact.")]


def test_every_read_is_audited(client, inbox):
    login(client, "cr@amniotic.studio")
    listing = client.get("/staff/inbox/").get_data(as_text=True)
    assert "Premier message" in listing and "Second message" in listing
    page = client.get(f"/staff/inbox/{inbox[0]}").get_data(as_text=True)
    assert "Premier message" in page and "claire@example.org" in page
    assert client.get("/staff/inbox/999").status_code == 404
    trail = audit_trail()
    assert ("contact.list", "contact_messages") in trail
    assert ("contact.read", f"contact_message:{inbox[0]}") in trail
    entry = db.session.scalar(select(AuditEntry).filter_by(action="contact.read"))
    assert entry.actor_label == "cr@amniotic.studio"


def test_mark_handled_and_delete(client, inbox):
    login(client, "cr@amniotic.studio")
    token = csrf_token(client, f"/staff/inbox/{inbox[0]}")
    assert client.post(f"/staff/inbox/{inbox[0]}/handled", data={"handled": "1"}) \
        .status_code == 400  # no CSRF token: refused
    response = client.post(f"/staff/inbox/{inbox[0]}/handled",
                           data={"handled": "1", "csrf_token": token})
    assert response.status_code == 302
    assert db.session.get(ContactMessage, inbox[0]).handled_at is not None
    unhandled = client.get("/staff/inbox/?show=unhandled").get_data(as_text=True)
    assert "Second message" in unhandled and "Premier message" not in unhandled
    response = client.post(f"/staff/inbox/{inbox[1]}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(ContactMessage, inbox[1]) is None
    assert db.session.scalar(select(func.count()).select_from(ContactMessage)) == 1
    trail = audit_trail()
    assert ("contact.handled", f"contact_message:{inbox[0]}") in trail
    assert ("contact.delete", f"contact_message:{inbox[1]}") in trail
