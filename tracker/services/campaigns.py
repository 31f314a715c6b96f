"""Newsletter campaigns: drafts, test sends, and delivery that survives a crash.

Delivery is at most once per recipient. Each recipient row goes pending -> sending -> sent
(or failed), and each transition is committed on its own: `sending` before the message is
handed to SMTP, `sent` once the server accepted it. A process killed between those two
commits leaves the row in `sending`, and nobody can tell whether the server kept the message
(it may have received it without our reading its answer). The next run marks such rows
`unknown` and does not send them again: a missing newsletter is a smaller harm than a
duplicate, and the report shows the count. `campaigns send ID --retry-unknown` sends them
anyway, with the same Message-ID, so mail clients that deduplicate show a copy only once.

Claiming a row is a compare-and-set (`UPDATE ... WHERE state = 'pending'`), so two senders
running at once (a resumed CLI run and a web thread, say) never both send the same copy.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import urlsplit

from flask import Flask, current_app
from sqlalchemy import func, select, update

from tracker.clock import utcnow
from tracker.domain.mail import (
    CAMPAIGN_SENDING,
    CAMPAIGN_SENT,
    DRAFT,
    FAILED,
    OPEN_PATH,
    PENDING,
    SENDING,
    SENT,
    SKIPPED,
    UNKNOWN,
    UNSUBSCRIBE_PATH,
    CampaignContent,
    CampaignReport,
    Envelope,
    compose,
    may_receive,
    report_from,
    scrub,
    send_blocker,
)
from tracker.extensions import db
from tracker.models import Campaign, CampaignRecipient, OppositionEntry, Subscriber, User
from tracker.services import audit
from tracker.services.mailer import Mailer, MailError, mailer_from_config
from tracker.services.newsletter import links, public_url
from tracker.services.privacy import is_opposed, opposition_hmac

log = logging.getLogger("tracker.campaigns")
# A copy the server deferred (4xx) is tried again by later runs, up to this many times.
MAX_ATTEMPTS = 3
# The states a copy handed to SMTP may be in when its answer arrives: `unknown` too, when a
# run started meanwhile took this sender for dead; the answer then settles it.
IN_FLIGHT = (SENDING, UNKNOWN)


class CampaignError(ValueError):
    """A campaign action that cannot be done now, with a message for the user."""


class DeliveryInterrupted(RuntimeError):
    """The SMTP connection failed mid-run; what was not sent stays pending for a resume."""


def get(campaign_id: int) -> Campaign | None:
    return db.session.get(Campaign, campaign_id)


def all_campaigns() -> list[Campaign]:
    return list(db.session.scalars(select(Campaign).order_by(Campaign.id.desc())))


def save(campaign: Campaign | None, *, actor: User, subject: str, html: str, text: str,
         lang: str, now: datetime) -> Campaign:
    """Create a draft, or edit one (an edit calls for a new test send)."""
    if campaign is None:
        campaign = Campaign(status=DRAFT, created_by_id=actor.id, created_at=now)
        db.session.add(campaign)
    elif campaign.status != DRAFT:
        raise CampaignError("a campaign that was sent cannot be edited")
    campaign.subject, campaign.html, campaign.text, campaign.lang = subject, html, text, lang
    campaign.edited_at = now
    db.session.commit()
    return campaign


def content_of(campaign: Campaign) -> CampaignContent:
    return CampaignContent(subject=campaign.subject, html=campaign.html, text=campaign.text,
                           lang=campaign.lang)


def _domain() -> str:
    return urlsplit(current_app.config["TRACKER_PUBLIC_URL"]).hostname or "localhost"


def _mailto() -> str:
    cfg = current_app.config
    return cfg["TRACKER_LIST_UNSUBSCRIBE_MAILTO"] or parseaddr(cfg["TRACKER_MAIL_FROM"])[1]


def _envelope(to: str, message_id: str, unsubscribe_token: str,
              open_token: str | None) -> Envelope:
    return Envelope(
        to=to, message_id=message_id,
        unsubscribe_url=public_url(UNSUBSCRIBE_PATH + unsubscribe_token),
        unsubscribe_mailto=_mailto(),
        pixel_url=public_url(f"{OPEN_PATH}{open_token}.gif") if open_token else None,
        list_id=f"Amniotic <newsletter.{_domain()}>", date=utcnow())


def _test_message(campaign: Campaign, to: str) -> EmailMessage:
    """The campaign as subscribers get it, with an inert unsubscribe link and no pixel."""
    envelope = _envelope(to, f"<c{campaign.id}.test.{secrets.token_hex(8)}@{_domain()}>",
                         links().test_unsubscribe_token(campaign.id), None)
    return compose(content_of(campaign), envelope, test=True)


def preview_html(campaign: Campaign) -> str:
    """The HTML part of the campaign exactly as sent (footer included, no pixel)."""
    body = _test_message(campaign, "preview@example.org").get_body(("html",))
    assert body is not None
    return str(body.get_content())


def send_test(campaign: Campaign, actor: User, *, now: datetime,
              mailer: Mailer | None = None) -> None:
    """Send the campaign to the signed-in member of staff, as subscribers will see it."""
    mailer = mailer or mailer_from_config(current_app.config)
    mailer.send(_test_message(campaign, actor.email))
    campaign.tested_at = now
    db.session.commit()


def _eligible_subscribers() -> list[Subscriber]:
    opposed = set(db.session.scalars(select(OppositionEntry.email_hmac)))
    return [s for s in db.session.scalars(select(Subscriber).order_by(Subscriber.id))
            if may_receive(confirmed=True, on_opposition_list=opposition_hmac(s.email) in opposed)]


def start(campaign: Campaign, actor: User | None, *, now: datetime) -> int:
    """Fix the audience (confirmed subscribers not on the opposition list) and return its size.

    The audience is set once: subscribers confirmed later are not added on resume.
    """
    blocker = send_blocker(campaign.status, campaign.edited_at, campaign.tested_at)
    if blocker:
        raise CampaignError(blocker)
    # Compare-and-set, so two clicks on "Send" cannot build the audience twice.
    claimed = db.session.execute(
        update(Campaign).where(Campaign.id == campaign.id, Campaign.status == DRAFT)
        .values(status=CAMPAIGN_SENDING, started_at=now)).rowcount
    if not claimed:
        db.session.rollback()
        raise CampaignError("this campaign has already been sent")
    audience = _eligible_subscribers()
    db.session.add_all(CampaignRecipient(campaign_id=campaign.id, subscriber_id=s.id,
                                         state=PENDING, attempts=0, open_count=0, pixel=False)
                       for s in audience)
    audit.record(actor, "campaign.send", f"campaign:{campaign.id}",
                 {"recipients": len(audience)})
    db.session.commit()
    return len(audience)


@dataclass
class Delivery:
    """What one run of `deliver` did."""

    accepted: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    unknown_before: int = 0  # left in `sending` by an earlier run that stopped
    finished: bool = False


def deliver(campaign_id: int, *, mailer: Mailer | None = None, batch_size: int | None = None,
            delay: float | None = None, retry_unknown: bool = False) -> Delivery:
    """Send every pending copy of a started campaign, in batches (one SMTP connection each).

    Safe to run again after a crash: see the module docstring for what happens to the copy
    that was in flight.
    """
    cfg = current_app.config
    mailer = mailer or mailer_from_config(cfg)
    batch_size = batch_size or cfg["TRACKER_CAMPAIGN_BATCH_SIZE"]
    delay = cfg["TRACKER_CAMPAIGN_SEND_DELAY"] if delay is None else delay
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.status == DRAFT:
        raise CampaignError("start the campaign before delivering it")
    result = Delivery(unknown_before=_settle_in_flight(campaign_id, retry_unknown))
    content = content_of(campaign)
    last_id = 0
    while True:
        batch = list(db.session.scalars(
            select(CampaignRecipient.id).where(
                CampaignRecipient.campaign_id == campaign_id,
                CampaignRecipient.state == PENDING, CampaignRecipient.id > last_id)
            .order_by(CampaignRecipient.id).limit(batch_size)))
        db.session.commit()  # end the read transaction before talking to SMTP
        if not batch:
            break
        last_id = batch[-1]
        with mailer.connect() as smtp:
            for recipient_id in batch:
                outcome = _deliver_one(campaign_id, content, recipient_id, mailer, smtp)
                setattr(result, outcome, getattr(result, outcome) + 1)
                if delay and outcome == "accepted":
                    time.sleep(delay)
    result.finished = _finish_if_done(campaign_id)
    return result


def _settle_in_flight(campaign_id: int, retry_unknown: bool) -> int:
    """Rows a stopped run left in `sending` become `unknown` (or pending again, if asked)."""
    left = db.session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == SENDING)
        .values(state=UNKNOWN)).rowcount or 0
    if retry_unknown:
        db.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign_id,
                   CampaignRecipient.state == UNKNOWN)
            .values(state=PENDING))
    db.session.commit()
    return left


def _set(recipient_id: int, *, expect: tuple[str, ...], **values: object) -> bool:
    """Move one row from one of the `expect` states, committing at once; False if it was in
    none of them."""
    changed = db.session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.id == recipient_id, CampaignRecipient.state.in_(expect))
        .values(**values)).rowcount
    db.session.commit()
    return bool(changed)


def _deliver_one(campaign_id: int, content: CampaignContent, recipient_id: int,
                 mailer: Mailer, smtp: smtplib.SMTP) -> str:
    """One copy, in three commits; nothing reads the database while SMTP has it."""
    recipient = db.session.get(CampaignRecipient, recipient_id, populate_existing=True)
    assert recipient is not None
    subscriber = db.session.get(Subscriber, recipient.subscriber_id) \
        if recipient.subscriber_id is not None else None
    # Checked again at send time: unsubscribing or objecting takes effect at once.
    if subscriber is None or not may_receive(confirmed=True,
                                             on_opposition_list=is_opposed(subscriber.email)):
        _set(recipient_id, expect=(PENDING,), state=SKIPPED)
        return "skipped"
    pixel = subscriber.open_tracking
    email = subscriber.email
    if not _set(recipient_id, expect=(PENDING,), state=SENDING, pixel=pixel,
                sending_at=utcnow(), attempts=CampaignRecipient.attempts + 1):
        return "skipped"  # another sender took it
    envelope = _envelope(email, f"<c{campaign_id}.r{recipient_id}@{_domain()}>",
                         links().unsubscribe_token(recipient_id),
                         links().open_token(recipient_id) if pixel else None)
    try:
        mailer.send(compose(content, envelope), smtp)
    except MailError as exc:
        return _handle_refusal(recipient_id, email, exc)
    _set(recipient_id, expect=IN_FLIGHT, state=SENT, sent_at=utcnow(), error=None)
    return "accepted"


def _handle_refusal(recipient_id: int, email: str, exc: MailError) -> str:
    cause = exc.__cause__
    code = _smtp_code(cause)
    error = scrub(f"{code or ''} {cause}".strip(), email)
    if code is None:
        # The connection broke: whether the server kept this copy is unknown.
        _set(recipient_id, expect=IN_FLIGHT, state=UNKNOWN, error=error)
        raise DeliveryInterrupted(f"SMTP connection lost: {error}") from exc
    attempts = db.session.scalar(select(CampaignRecipient.attempts)
                                 .where(CampaignRecipient.id == recipient_id)) or 0
    if 400 <= code < 500 and attempts < MAX_ATTEMPTS:
        _set(recipient_id, expect=IN_FLIGHT, state=PENDING, error=error)
        return "deferred"
    _set(recipient_id, expect=IN_FLIGHT, state=FAILED, error=error)
    return "failed"


def _smtp_code(cause: BaseException | None) -> int | None:
    """The SMTP reply code of a refusal; None when there was no reply (connection lost)."""
    if isinstance(cause, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in cause.recipients.values()]
        return max(codes) if codes else None
    if isinstance(cause, smtplib.SMTPResponseException):
        return cause.smtp_code
    return None


def _finish_if_done(campaign_id: int) -> bool:
    remaining = db.session.scalar(select(func.count()).where(
        CampaignRecipient.campaign_id == campaign_id,
        CampaignRecipient.state.in_((PENDING, SENDING)))) or 0
    if remaining:
        db.session.commit()
        return False
    db.session.execute(update(Campaign).where(Campaign.id == campaign_id,
                                              Campaign.status == CAMPAIGN_SENDING)
                       .values(status=CAMPAIGN_SENT, finished_at=utcnow()))
    db.session.commit()
    return True


def dispatch(app: Flask, campaign_id: int,
             on_done: Callable[[Delivery | None], None] | None = None) -> threading.Thread:
    """Deliver in a background thread of this process (the web "Send" button).

    If the process stops, `flask --app tracker campaigns send ID` resumes.
    """

    def run() -> None:
        result = None
        try:
            with app.app_context():
                result = deliver(campaign_id)
        except Exception:
            log.exception("campaign %s: delivery stopped; resume it with "
                          "`flask --app tracker campaigns send %s`", campaign_id, campaign_id)
        if on_done:
            on_done(result)

    thread = threading.Thread(target=run, name=f"campaign-{campaign_id}", daemon=True)
    thread.start()
    return thread


def report(campaign_id: int) -> CampaignReport:
    """Sent, accepted, failed, opens (unique and total) and unsubscriptions of a campaign."""
    of_campaign = CampaignRecipient.campaign_id == campaign_id
    states = {state: count for state, count in db.session.execute(
        select(CampaignRecipient.state, func.count()).where(of_campaign)
        .group_by(CampaignRecipient.state))}
    row = db.session.execute(select(
        func.count().filter(CampaignRecipient.pixel.is_(True),
                            CampaignRecipient.state == SENT),
        func.count(CampaignRecipient.opened_at),
        func.coalesce(func.sum(CampaignRecipient.open_count), 0),
        func.count(CampaignRecipient.unsubscribed_at),
    ).where(of_campaign)).one()
    return report_from(states, tracked=row[0], unique_opens=row[1], total_opens=int(row[2]),
                       unsubscriptions=row[3])
