"""Contact messages, newsletter subscribers and the opposition list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db

EMAIL = {"data_category": "user.contact.email"}
MESSAGE = {"data_category": "user.content.private"}


class ContactMessage(db.Model):
    """A message sent through the contact form (kept 1 year, customer relations only)."""

    __tablename__ = "contact_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True, info=EMAIL)
    message: Mapped[str] = mapped_column(Text, info=MESSAGE)
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime)


class Subscriber(db.Model):
    """A newsletter address: `pending` until the double opt-in link is followed."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, info=EMAIL)
    status: Mapped[str] = mapped_column(String(16))  # pending | confirmed | unsubscribed
    open_tracking: Mapped[bool] = mapped_column(Boolean, default=False)
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    form_version: Mapped[str] = mapped_column(String(64))  # proof: the text the form showed
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime)


class OppositionEntry(db.Model):
    """An address that objected to marketing, kept only as a keyed hash (HMAC-SHA256)."""

    __tablename__ = "opposition_list"

    email_hmac: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # unsubscribe | objection | staff
    created_at: Mapped[datetime] = mapped_column(DateTime)
