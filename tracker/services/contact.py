"""Contact-form messages: receiving them, and the customer-relations inbox (every read audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from tracker.domain.mail import ContactInput
from tracker.extensions import db
from tracker.models import ContactMessage, User
from tracker.services import audit

INBOX_PAGE_SIZE = 50


def receive(data: ContactInput, *, lang: str, now: datetime) -> ContactMessage:
    """Store a message sent through the contact form."""
    message = ContactMessage(email=data.email, message=data.message, lang=lang, created_at=now)
    db.session.add(message)
    db.session.commit()
    return message


@dataclass(frozen=True, slots=True)
class InboxPage:
    messages: list[ContactMessage]
    total: int
    unhandled: int
    page: int
    pages: int


def inbox(actor: User, *, page: int = 1, unhandled_only: bool = False) -> InboxPage:
    """One page of messages, newest first; listing senders is a read, so it is audited."""
    query = select(ContactMessage)
    if unhandled_only:
        query = query.where(ContactMessage.handled_at.is_(None))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    unhandled = db.session.scalar(select(func.count()).where(
        ContactMessage.handled_at.is_(None))) or 0
    pages = max(1, -(-total // INBOX_PAGE_SIZE))
    page = min(max(page, 1), pages)
    messages = list(db.session.scalars(
        query.order_by(ContactMessage.created_at.desc(), ContactMessage.id.desc())
        .limit(INBOX_PAGE_SIZE).offset((page - 1) * INBOX_PAGE_SIZE)))
    audit.record(actor, "contact.list", "contact_messages",
                 {"page": page, "ids": [m.id for m in messages]})
    db.session.commit()
    return InboxPage(messages, total, unhandled, page, pages)


def read(actor: User, message_id: int) -> ContactMessage | None:
    """A message for reading; the read is audited."""
    message = db.session.get(ContactMessage, message_id)
    if message is None:
        return None
    audit.record(actor, "contact.read", f"contact_message:{message_id}")
    db.session.commit()
    return message


def set_handled(actor: User, message_id: int, handled: bool, *, now: datetime) -> bool:
    """Mark a message handled (or not); False when it does not exist."""
    message = db.session.get(ContactMessage, message_id)
    if message is None:
        return False
    message.handled_at = now if handled else None
    audit.record(actor, "contact.handled" if handled else "contact.unhandled",
                 f"contact_message:{message_id}")
    db.session.commit()
    return True


def delete(actor: User, message_id: int) -> bool:
    """Delete a message for good; the deletion is audited."""
    message = db.session.get(ContactMessage, message_id)
    if message is None:
        return False
    db.session.delete(message)
    audit.record(actor, "contact.delete", f"contact_message:{message_id}")
    db.session.commit()
    return True
