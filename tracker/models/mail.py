"""Contact messages, the newsletter (requests, subscribers, campaigns), the opposition list.

Every time column the retention job filters on is indexed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db

EMAIL = {"data_category": "user.contact.email"}
MESSAGE = {"data_category": "user.content.private"}
# When (and how often) one person opened one e-mail.
OPENS = {"data_category": "user.behavior"}


class ContactMessage(db.Model):
    """A message sent through the contact form (kept 1 year, customer relations only)."""

    __tablename__ = "contact_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True, info=EMAIL)
    message: Mapped[str] = mapped_column(Text, info=MESSAGE)
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime)


class FormText(db.Model):
    """Every wording an opt-in form showed, addressed by its SHA-256 (the proof's version)."""

    __tablename__ = "form_texts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    form: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text)
    first_used_at: Mapped[datetime] = mapped_column(DateTime)


class SubscriptionRequest(db.Model):
    """A newsletter opt-in waiting for its confirmation link; deleted when that expires.

    Not a subscription: it receives nothing but its confirmation e-mail.
    """

    __tablename__ = "subscription_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True, info=EMAIL)
    open_tracking: Mapped[bool] = mapped_column(Boolean, default=False)
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    form_version: Mapped[str] = mapped_column(String(64))  # a form_texts.sha256
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Subscriber(db.Model):
    """A confirmed newsletter address with its double opt-in proof.

    The proof: the form's text version (a `form_texts` hash), when it was requested and
    confirmed, and the SHA-256 of the confirmation token. Unsubscribing deletes the row at
    once; only a keyed hash of the address stays, on the opposition list.
    """

    __tablename__ = "subscribers"
    # Ids are never reused, on SQLite too: campaign copies of an erased subscriber keep the
    # old id where foreign keys are not enforced, and must never point at someone new.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, info=EMAIL)
    open_tracking: Mapped[bool] = mapped_column(Boolean, default=False)
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    form_version: Mapped[str] = mapped_column(String(64))  # a form_texts.sha256
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    confirmed_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class OppositionEntry(db.Model):
    """An address that objected to marketing, kept only as a keyed hash (HMAC-SHA256)."""

    __tablename__ = "opposition_list"

    email_hmac: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # unsubscribe | objection | staff
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Campaign(db.Model):
    """A newsletter issue written by marketing: draft -> sending -> sent."""

    __tablename__ = "campaigns"
    # Ids are never reused, on SQLite too: signed links in old e-mails name them.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(2), default="fr")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    edited_at: Mapped[datetime] = mapped_column(DateTime)
    tested_at: Mapped[datetime | None] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class CampaignRecipient(db.Model):
    """One subscriber's copy of one campaign and where its delivery stands.

    The address is not copied here: it is read from the subscriber at send time, and the row
    becomes anonymous (subscriber_id NULL) when the subscriber leaves.
    """

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        Index("ix_campaign_recipients_campaign_state", "campaign_id", "state"),
        # Ids are never reused, on SQLite too: the unsubscribe and pixel links sign them.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # Whether this copy carries an open pixel: the subscriber's consent when it was sent.
    pixel: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(300))
    sending_at: Mapped[datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime, info=OPENS)
    open_count: Mapped[int] = mapped_column(Integer, default=0, info=OPENS)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime)
