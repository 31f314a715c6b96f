"""Both embedded forms of the demo site, filled in Chromium: contact, then newsletter opt-in
with its confirmation link opened from the e-mail the real SMTP server received."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tracker.models import ContactMessage, Subscriber

pytestmark = pytest.mark.browser


@pytest.fixture
def live_config(smtp_server) -> dict[str, Any]:
    return {"TRACKER_SMTP_URL": smtp_server.url}


@pytest.fixture
def page(browser, live_server) -> Iterator[Any]:
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    page.problems = []
    # Any script error or Content-Security-Policy violation fails the test (error statuses,
    # such as the 422 of a refused form, are expected).
    page.on("console", lambda m: m.type == "error" and not m.text.startswith(
        "Failed to load resource") and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.goto(live_server.url + "/contact/")
    page.get_by_role("button", name="Tout refuser").click()
    yield page
    context.close()


def test_contact_form_on_the_demo_page(page, live_server):
    form = page.frame_locator("#contact-form")
    # Passes the browser's own check, not ours: our error comes back inside the iframe.
    form.get_by_label("Votre adresse e-mail").fill("claire@localhost")
    form.get_by_label("Votre message").fill("Bonjour, un devis pour des affiches ?")
    form.get_by_role("button", name="Envoyer").click()
    error = form.locator("#email-error")
    error.wait_for()
    assert "n'est pas valide" in error.inner_text()
    assert form.get_by_label("Votre message").input_value().startswith("Bonjour")

    form.get_by_label("Votre adresse e-mail").fill("claire@example.org")
    form.get_by_role("button", name="Envoyer").click()
    form.get_by_role("heading", name="Message envoyé").wait_for()
    rows = live_server.query(select(ContactMessage.email, ContactMessage.message))
    assert [tuple(r) for r in rows] == [("claire@example.org",
                                         "Bonjour, un devis pour des affiches ?")]
    assert page.problems == []


def test_newsletter_opt_in_on_the_demo_page(page, live_server, smtp_server):
    page.locator("#newsletter-form").scroll_into_view_if_needed()
    form = page.frame_locator("#newsletter-form")
    form.get_by_label("Votre adresse e-mail").fill("lea@example.org")
    assert not form.locator("#newsletter").is_checked()
    assert not form.locator("#open_tracking").is_checked()
    form.get_by_role("button", name="S'inscrire").click()
    assert "Cochez la case" in form.locator("#newsletter-error").inner_text()

    form.locator("#newsletter").check()
    form.locator("#open_tracking").check()
    form.get_by_role("button", name="S'inscrire").click()
    form.get_by_role("heading", name="Vérifiez votre boîte de réception").wait_for()
    assert live_server.query(select(Subscriber)) == []

    (mail,) = smtp_server.inbox.to("lea@example.org")
    (link,) = re.findall(r"http://\S+/confirm/\S+", mail.get_content())
    page.goto(link)
    page.get_by_role("button", name="Je confirme mon inscription").click()
    page.get_by_role("heading", name="Inscription confirmée").wait_for()
    rows = live_server.query(select(Subscriber.email, Subscriber.open_tracking))
    assert [tuple(r) for r in rows] == [("lea@example.org", True)]
    assert page.problems == []
