"""Outgoing e-mail over SMTP, configured by one URL (TRACKER_SMTP_URL)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class MailError(RuntimeError):
    """Mail could not be handed to the SMTP server."""


class Mailer:
    """Sends messages through one SMTP server; a connection per `send` or per `session`."""

    def __init__(self, url: str | None, sender: str, timeout: float = 10.0) -> None:
        self.url = url
        self.sender = sender
        self.timeout = timeout

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def connect(self) -> smtplib.SMTP:
        """Open an authenticated connection (use as a context manager for batches)."""
        if not self.url:
            raise MailError("TRACKER_SMTP_URL is not set: no mail can be sent")
        parts = urlsplit(self.url)
        if parts.scheme not in SCHEMES:
            raise MailError(f"unsupported SMTP URL scheme {parts.scheme!r}")
        host, port = parts.hostname or "localhost", parts.port or SCHEMES[parts.scheme]
        try:
            if parts.scheme == "smtps":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=self.timeout,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(host, port, timeout=self.timeout)
                if parts.scheme == "smtp+starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"cannot reach the SMTP server: {exc}") from exc
        return smtp

    def send(self, message: EmailMessage, smtp: smtplib.SMTP | None = None) -> None:
        """Hand one message to the server; raise MailError when it is not accepted."""
        if "From" not in message:
            message["From"] = self.sender
        try:
            if smtp is not None:
                smtp.send_message(message)
                return
            with self.connect() as connection:
                connection.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"the SMTP server refused the message: {exc}") from exc


def mailer_from_config(config: dict) -> Mailer:
    return Mailer(config.get("TRACKER_SMTP_URL"), config["TRACKER_MAIL_FROM"])
