"""The SMTP mailer against a real SMTP server on loopback."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from tracker.services.mailer import Mailer, MailError


def test_sends_through_a_real_smtp_server(smtp_server):
    message = EmailMessage()
    message["To"] = "visitor@example.org"
    message["Subject"] = "Votre code"
    message.set_content("123456")
    Mailer(smtp_server.url, "Amniotic <contact@amniotic.studio>").send(message)
    (received,) = smtp_server.inbox.to("visitor@example.org")
    assert received["Subject"] == "Votre code"
    assert received["From"] == "Amniotic <contact@amniotic.studio>"
    assert received.get_content().strip() == "123456"


def test_unconfigured_or_unreachable_is_a_clear_error():
    with pytest.raises(MailError, match="not set"):
        Mailer(None, "a@b.c").send(EmailMessage())
    with pytest.raises(MailError, match="cannot reach"):
        Mailer("smtp://127.0.0.1:1", "a@b.c").send(EmailMessage())
