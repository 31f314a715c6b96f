"""The newsletter: double opt-in, unsubscription, the opposition list and open tracking.

An address on the opposition list may subscribe again only through the double opt-in: the
confirmation (a click on the link we e-mailed, then on a button) is the new explicit opt-in,
and it lifts the opposition. `import_subscribers`, which has no such proof, skips those
addresses.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from tracker.domain.mail import (
    CONFIRM_PATH,
    TEXTS,
    FormInvalid,
    MailLinks,
    NewsletterInput,
    mask_email,
    newsletter_wording,
    normalize_email,
    sha256,
)
from tracker.extensions import db
from tracker.models import (
    Campaign,
    CampaignRecipient,
    FormText,
    OppositionEntry,
    Subscriber,
    SubscriptionRequest,
    User,
)
from tracker.services import audit
from tracker.services.mailer import mailer_from_config
from tracker.services.privacy import add_to_opposition_list, is_opposed, opposition_hmac

# One confirmation e-mail per address in this interval, whoever asks: the form cannot be
# used to flood someone's inbox.
CONFIRM_RESEND_INTERVAL = timedelta(minutes=10)
SUBSCRIBERS_PAGE_SIZE = 100


def links() -> MailLinks:
    return MailLinks(current_app.config["SECRET_KEY"])


def public_url(path: str) -> str:
    """An absolute link for an e-mail (no request to take the host from)."""
    return current_app.config["TRACKER_PUBLIC_URL"].rstrip("/") + path


def confirm_validity() -> timedelta:
    return timedelta(hours=current_app.config["TRACKER_NEWSLETTER_CONFIRM_HOURS"])


def archive_form_text(form: str, content: str, now: datetime) -> str:
    """Store a form's wording once (idempotent) and return its SHA-256, the proof's version."""
    digest = sha256(content)
    if db.session.get(FormText, digest) is None:
        db.session.add(FormText(sha256=digest, form=form, content=content, first_used_at=now))
        db.session.flush()
    return digest


def request_subscription(data: NewsletterInput, *, lang: str, now: datetime) -> None:
    """Record an opt-in request and e-mail its confirmation link (raises MailError)."""
    purge_expired_requests(now)
    latest = db.session.scalar(select(func.max(SubscriptionRequest.requested_at))
                               .where(SubscriptionRequest.email == data.email))
    if latest is not None and now - latest < CONFIRM_RESEND_INTERVAL:
        return  # the link sent moments ago is still valid
    token = links().confirm_token(secrets.token_urlsafe(24))
    request = SubscriptionRequest(
        email=data.email, open_tracking=data.open_tracking, lang=lang,
        form_version=archive_form_text("newsletter", newsletter_wording(lang), now),
        token_sha256=sha256(token), requested_at=now)
    db.session.add(request)
    # Committed before the SMTP conversation, so no database lock is held during it.
    db.session.commit()
    try:
        mailer_from_config(current_app.config).send(_confirmation_mail(request, token))
    except Exception:
        db.session.delete(request)
        db.session.commit()
        raise


def _confirmation_mail(request: SubscriptionRequest, token: str) -> EmailMessage:
    texts = TEXTS[request.lang]
    hours = current_app.config["TRACKER_NEWSLETTER_CONFIRM_HOURS"]
    message = EmailMessage()
    message["To"] = request.email
    message["Subject"] = texts["confirm_mail_subject"]
    message["Message-ID"] = make_msgid(domain=urlsplit(public_url("/")).hostname)
    message.set_content(texts["confirm_mail"].format(
        hours=hours, url=public_url(f"{CONFIRM_PATH}{token}?lang={request.lang}")))
    return message


def purge_expired_requests(now: datetime) -> int:
    """Delete opt-in requests whose link has expired; they were never subscriptions."""
    result = db.session.execute(delete(SubscriptionRequest).where(
        SubscriptionRequest.requested_at < now - confirm_validity()))
    return result.rowcount or 0


@dataclass(frozen=True, slots=True)
class Confirmation:
    email: str
    lang: str
    done: bool


def find_confirmation(token: str, now: datetime) -> Confirmation | None:
    """What a confirmation link is about, or None when it is forged, expired or unknown."""
    if not links().confirm_valid(token):
        return None
    digest = sha256(token)
    subscriber = db.session.scalar(select(Subscriber).filter_by(token_sha256=digest))
    if subscriber is not None:
        return Confirmation(subscriber.email, subscriber.lang, done=True)
    request = _live_request(digest, now)
    return None if request is None else Confirmation(request.email, request.lang, done=False)


def _live_request(digest: str, now: datetime) -> SubscriptionRequest | None:
    return db.session.scalar(select(SubscriptionRequest).where(
        SubscriptionRequest.token_sha256 == digest,
        SubscriptionRequest.requested_at >= now - confirm_validity()))


def confirm(token: str, now: datetime) -> Confirmation | None:
    """Turn a request into a subscription (idempotent); the proof moves to the subscriber."""
    found = find_confirmation(token, now)
    if found is None or found.done:
        return found
    request = _live_request(sha256(token), now)
    assert request is not None
    subscriber = db.session.scalar(select(Subscriber).filter_by(email=request.email))
    if subscriber is None:
        subscriber = Subscriber(email=request.email)
        db.session.add(subscriber)
    # A new confirmation replaces the proof and the open-tracking choice.
    subscriber.open_tracking = request.open_tracking
    subscriber.lang = request.lang
    subscriber.form_version = request.form_version
    subscriber.token_sha256 = request.token_sha256
    subscriber.requested_at = request.requested_at
    subscriber.confirmed_at = now
    db.session.execute(delete(SubscriptionRequest).where(
        SubscriptionRequest.email == request.email))
    # This confirmation is the new explicit opt-in: it lifts an earlier objection.
    db.session.execute(delete(OppositionEntry).where(
        OppositionEntry.email_hmac == opposition_hmac(request.email)))
    try:
        db.session.commit()
    except IntegrityError:  # the same link confirmed twice at once: the other one won
        db.session.rollback()
    return Confirmation(request.email, request.lang, done=True)


def end_marketing(email: str, *, source: str, now: datetime) -> bool:
    """Stop all marketing to an address now: opposition list, subscriber and requests
    deleted, its campaign copies detached. True when it was subscribed. The caller commits."""
    add_to_opposition_list(email, source, now=now)
    db.session.execute(delete(SubscriptionRequest).where(SubscriptionRequest.email == email))
    subscriber = db.session.scalar(select(Subscriber).filter_by(email=email))
    if subscriber is None:
        return False
    # Explicit rather than ON DELETE SET NULL: SQLite enforces foreign keys only on request.
    db.session.execute(update(CampaignRecipient)
                       .where(CampaignRecipient.subscriber_id == subscriber.id)
                       .values(subscriber_id=None))
    db.session.delete(subscriber)
    return True


@dataclass(frozen=True, slots=True)
class Unsubscription:
    kind: str  # "recipient" | "test"
    lang: str
    email_hint: str | None  # masked address, while still subscribed
    done: bool


def find_unsubscription(token: str) -> Unsubscription | None:
    """What an unsubscribe link is about, or None when it is not one of ours."""
    target = links().read_unsubscribe(token)
    if target is None:
        return None
    kind, key = target
    if kind == "test":
        campaign = db.session.get(Campaign, key)
        return Unsubscription("test", campaign.lang if campaign else "fr", None, done=True)
    recipient = db.session.get(CampaignRecipient, key)
    if recipient is None:
        return None
    campaign = db.session.get(Campaign, recipient.campaign_id)
    subscriber = db.session.get(Subscriber, recipient.subscriber_id) \
        if recipient.subscriber_id is not None else None
    lang = campaign.lang if campaign else "fr"
    if subscriber is None:
        return Unsubscription("recipient", lang, None, done=True)
    return Unsubscription("recipient", lang, mask_email(subscriber.email), done=False)


def unsubscribe(token: str, now: datetime) -> Unsubscription | None:
    """Unsubscribe the recipient of a campaign e-mail (RFC 8058 one-click; idempotent)."""
    found = find_unsubscription(token)
    if found is None or found.done:
        return found
    target = links().read_unsubscribe(token)
    assert target is not None
    recipient = db.session.get(CampaignRecipient, target[1])
    assert recipient is not None and recipient.subscriber_id is not None
    subscriber = db.session.get(Subscriber, recipient.subscriber_id)
    assert subscriber is not None
    recipient.unsubscribed_at = now
    end_marketing(subscriber.email, source="unsubscribe", now=now)
    db.session.commit()
    return Unsubscription("recipient", found.lang, None, done=True)


def record_open(token: str, now: datetime) -> bool:
    """Count an open of a tracked copy, while its subscriber still consents to tracking."""
    recipient_id = links().read_open(token)
    if recipient_id is None:
        return False
    consenting = select(Subscriber.id).where(Subscriber.open_tracking.is_(True))
    result = db.session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.id == recipient_id, CampaignRecipient.pixel.is_(True),
               CampaignRecipient.subscriber_id.in_(consenting))
        .values(open_count=CampaignRecipient.open_count + 1,
                opened_at=func.coalesce(CampaignRecipient.opened_at, now)))
    db.session.commit()
    return bool(result.rowcount)


def stop(actor: User | None, raw_email: str, *, now: datetime) -> bool:
    """Record a "stop" received by any route (a reply, a call): marketing ends at once."""
    email = normalize_email(raw_email)
    removed = end_marketing(email, source="staff", now=now)
    audit.record(actor, "newsletter.stop", "opposition_list", {"was_subscribed": removed})
    db.session.commit()
    return removed


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int = 0
    existing: int = 0
    opposed: int = 0
    invalid: int = 0


def import_subscribers(emails: Iterable[str], *, proof: str, now: datetime) -> ImportResult:
    """Add addresses whose consent was collected elsewhere (`proof` says where and how).

    Addresses on the opposition list are skipped: only a new double opt-in brings them back.
    """
    version = archive_form_text("import", proof, now)
    counts = {"added": 0, "existing": 0, "opposed": 0, "invalid": 0}
    for raw in emails:
        try:
            email = normalize_email(raw)
        except FormInvalid:
            counts["invalid"] += 1
            continue
        if is_opposed(email):
            counts["opposed"] += 1
        elif db.session.scalar(select(Subscriber.id).filter_by(email=email)) is not None:
            counts["existing"] += 1
        else:
            db.session.add(Subscriber(email=email, open_tracking=False, lang="fr",
                                      form_version=version, requested_at=now,
                                      confirmed_at=now))
            db.session.flush()
            counts["added"] += 1
    db.session.commit()
    return ImportResult(**counts)


@dataclass(frozen=True, slots=True)
class SubscriberPage:
    subscribers: list[Subscriber]
    total: int
    page: int
    pages: int


def subscribers(actor: User, *, page: int = 1) -> SubscriberPage:
    """One page of confirmed subscribers; the read is audited."""
    total = db.session.scalar(select(func.count()).select_from(Subscriber)) or 0
    pages = max(1, -(-total // SUBSCRIBERS_PAGE_SIZE))
    page = min(max(page, 1), pages)
    rows = list(db.session.scalars(
        select(Subscriber).order_by(Subscriber.confirmed_at.desc(), Subscriber.id.desc())
        .limit(SUBSCRIBERS_PAGE_SIZE).offset((page - 1) * SUBSCRIBERS_PAGE_SIZE)))
    audit.record(actor, "newsletter.subscribers.list", "subscribers",
                 {"page": page, "count": len(rows)})
    db.session.commit()
    return SubscriberPage(rows, total, page, pages)


def counts() -> dict[str, int]:
    """How many confirmed subscribers, with open-tracking consent, and pending requests."""
    return {
        "subscribers": db.session.scalar(select(func.count()).select_from(Subscriber)) or 0,
        "open_tracking": db.session.scalar(select(func.count()).where(
            Subscriber.open_tracking.is_(True))) or 0,
        "pending": db.session.scalar(
            select(func.count()).select_from(SubscriptionRequest)) or 0,
    }
