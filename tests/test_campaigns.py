"""Campaigns through a real SMTP server: headers, pixel, one-click unsubscription, report,
refusals, a sender killed mid-campaign and resumed, and who may receive (as a property)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from tests.helpers import csrf_token, login, mail_links, make_user
from tests.support.postgres import free_port
from tests.support.smtp import Inbox
from tracker.clock import utcnow
from tracker.domain.mail import NewsletterInput
from tracker.extensions import db
from tracker.models import (
    AuditEntry,
    Campaign,
    CampaignRecipient,
    OppositionEntry,
    Subscriber,
    SubscriptionRequest,
)
from tracker.services import campaigns, newsletter
from tracker.services.privacy import add_to_opposition_list, opposition_hmac

PUBLIC = "https://tracker.amniotic.studio"
HTML = "<html><body><h1>La lettre</h1><p>Nouveaux projets à l'atelier.</p></body></html>"


@pytest.fixture
def mail_app(app, smtp_server):
    app.config.update(TRACKER_SMTP_URL=smtp_server.url, TRACKER_PUBLIC_URL=PUBLIC)
    return app


@pytest.fixture
def marketer(app):
    return make_user("mk@amniotic.studio", "marketing")


def confirmed(smtp_server, email: str, *, tracking: bool) -> None:
    """Subscribe through the real double opt-in: request, e-mailed link, confirmation."""
    newsletter.request_subscription(NewsletterInput(email, tracking), lang="fr", now=utcnow())
    (link,) = [u for u in mail_links(smtp_server.inbox.to(email)[-1]) if "/confirm/" in u]
    assert newsletter.confirm(urlsplit(link).path.rsplit("/", 1)[1], utcnow()).done


def ready_campaign(actor, subject: str = "La lettre de novembre") -> Campaign:
    campaign = campaigns.save(None, actor=actor, subject=subject, html=HTML,
                              text="Nouveaux projets à l'atelier.", lang="fr", now=utcnow())
    campaigns.send_test(campaign, actor, now=utcnow())
    return campaign


def copies(inbox: Inbox, campaign_id: int) -> dict[str, list]:
    """The campaign's messages received, by recipient (test sends excluded)."""
    found: dict[str, list] = {}
    for message in inbox.messages:
        if (message["Message-ID"] or "").startswith(f"<c{campaign_id}.r"):
            found.setdefault(message["X-Envelope-To"], []).append(message)
    return found


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC + "/")
    return urlsplit(url).path


def wait_until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def campaign_status(campaign_id: int) -> str:
    db.session.rollback()  # a fresh read: the sender runs in another thread or process
    return db.session.get(Campaign, campaign_id, populate_existing=True).status


def test_write_test_send_report_and_unsubscribe(client, mail_app, smtp_server, marketer):
    confirmed(smtp_server, "lea@example.org", tracking=True)
    confirmed(smtp_server, "sam@example.org", tracking=False)
    newsletter.request_subscription(NewsletterInput("pending@example.org", True), lang="fr",
                                    now=utcnow())
    login(client, "mk@amniotic.studio")
    token = csrf_token(client, "/staff/campaigns/new")
    response = client.post("/staff/campaigns/new", data={
        "csrf_token": token, "subject": "La lettre de novembre", "lang": "fr", "html": HTML,
        "text": "Nouveaux projets à l'atelier."})
    assert response.status_code == 302
    campaign = db.session.scalars(select(Campaign)).one()
    show = f"/staff/campaigns/{campaign.id}"

    # Sending before a test to oneself is refused.
    client.post(f"{show}/send", data={"csrf_token": token})
    assert campaign_status(campaign.id) == "draft"
    assert "send a test to yourself" in client.get(show).get_data(as_text=True)

    preview = client.get(f"{show}/preview")
    assert preview.headers["Content-Security-Policy"].startswith("sandbox;")
    assert "Nouveaux projets" in preview.get_data(as_text=True)
    assert "Se désinscrire" in preview.get_data(as_text=True)

    client.post(f"{show}/test", data={"csrf_token": token})
    (test,) = smtp_server.inbox.to("mk@amniotic.studio")
    assert test["Subject"] == "[TEST] La lettre de novembre" and "/o/" not in html_of(test)

    client.post(f"{show}/send", data={"csrf_token": token})
    wait_until(lambda: campaign_status(campaign.id) == "sent")
    received = copies(smtp_server.inbox, campaign.id)
    assert sorted(received) == ["lea@example.org", "sam@example.org"]
    assert smtp_server.inbox.to("pending@example.org")[0]["Subject"].startswith("Confirmez")
    assert len(smtp_server.inbox.to("pending@example.org")) == 1  # nothing but that

    (lea,) = received["lea@example.org"]
    (sam,) = received["sam@example.org"]
    for message in (lea, sam):
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        https, mailto = (part.strip() for part in message["List-Unsubscribe"].split(","))
        assert https.startswith(f"<{PUBLIC}/u/") and https.endswith(">")
        assert mailto == "<mailto:contact@amniotic.studio?subject=stop>"
        assert https[1:-1] in message.get_body(("plain",)).get_content()
        assert https[1:-1] in html_of(message)
    assert "/o/" not in html_of(sam)  # no open-tracking consent, no pixel
    (pixel,) = [u for u in mail_links_html(lea) if "/o/" in u]

    # Opens: first time and count.
    for _ in range(2):
        image = client.get(path_of(pixel))
        assert image.mimetype == "image/gif" and image.headers["Cache-Control"].startswith(
            "no-store")
    recipient = db.session.scalars(select(CampaignRecipient).filter_by(pixel=True)).one()
    assert recipient.open_count == 2 and recipient.opened_at is not None

    # Unsubscribing: a GET (a mail scanner) only asks; the one-click POST needs no cookie.
    unsubscribe = path_of(lea["List-Unsubscribe"].split(",")[0].strip()[1:-1])
    stranger = mail_app.test_client()
    page = stranger.get(unsubscribe)
    assert page.status_code == 200 and "l•••@example.org" in page.get_data(as_text=True)
    assert db.session.scalar(select(Subscriber).filter_by(email="lea@example.org"))
    for _ in range(2):  # idempotent
        done = stranger.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200
        assert "Vous êtes désinscrit" in done.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.scalar(select(Subscriber).filter_by(email="lea@example.org")) is None
    entry = db.session.get(OppositionEntry, opposition_hmac("lea@example.org"))
    assert entry.source == "unsubscribe"
    client.get(path_of(pixel))  # opens after unsubscribing are not recorded

    report = client.get(f"{show}/report.json").get_json()
    assert {k: report[k] for k in ("recipients", "sent", "accepted", "failed", "unknown",
                                   "tracked", "unique_opens", "total_opens",
                                   "unsubscriptions")} == {
        "recipients": 2, "sent": 2, "accepted": 2, "failed": 0, "unknown": 0, "tracked": 1,
        "unique_opens": 1, "total_opens": 2, "unsubscriptions": 1}
    page = client.get(show).get_data(as_text=True)
    assert "Accepted by the mail server" in page and "Unsubscriptions" in page
    audit = db.session.scalar(select(AuditEntry).filter_by(action="campaign.send"))
    assert audit.target == f"campaign:{campaign.id}" and '"recipients":2' in audit.details


def mail_links_html(message) -> list[str]:
    import re

    return re.findall(r'(?:href|src)="(https?://[^"]+)"', html_of(message))


def test_forged_links_do_nothing(client, mail_app, smtp_server, marketer):
    assert client.get("/o/1.forged.gif").mimetype == "image/gif"
    assert client.post("/u/1.forged").status_code == 404
    assert client.get("/u/1.forged").status_code == 404


def test_campaign_pages_are_for_marketing(client, mail_app, marketer):
    make_user("cr@amniotic.studio", "customer_relations")
    assert client.get("/staff/campaigns/").status_code == 302
    login(client, "cr@amniotic.studio")
    assert client.get("/staff/campaigns/").status_code == 403
    assert client.get("/staff/campaigns/new").status_code == 403


@contextmanager
def smtp_with(inbox: Inbox) -> Iterator[str]:
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


class Refusing(Inbox):
    """Refuses one address for good (550) and defers another (451)."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.startswith("bounce@"):
            return f"550 5.1.1 <{address}>: no such user"
        if address.startswith("later@"):
            return "451 4.7.1 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_refused_and_deferred_copies(app, marketer):
    inbox = Refusing()
    with smtp_with(inbox) as url:
        app.config.update(TRACKER_SMTP_URL=url, TRACKER_PUBLIC_URL=PUBLIC)
        newsletter.import_subscribers(["ok@example.org", "bounce@example.org",
                                       "later@example.org"], proof="test", now=utcnow())
        campaign = ready_campaign(marketer)
        campaigns.start(campaign, marketer, now=utcnow())
        first = campaigns.deliver(campaign.id)
        assert (first.accepted, first.failed, first.deferred, first.finished) == (1, 1, 1, False)
        for _ in range(campaigns.MAX_ATTEMPTS - 1):
            campaigns.deliver(campaign.id)
        report = campaigns.report(campaign.id)
        assert (report.accepted, report.failed, report.pending) == (1, 2, 0)
        assert campaign_status(campaign.id) == "sent"
        errors = set(db.session.scalars(select(CampaignRecipient.error).where(
            CampaignRecipient.state == "failed")))
        assert any(e.startswith("550") for e in errors)
        assert not any("bounce@example.org" in e for e in errors)  # no address kept
        assert list(copies(inbox, campaign.id)) == ["ok@example.org"]


class Holding(Inbox):
    """Keeps the n-th message, then holds back its "250 OK": the sender is left between the
    server's acceptance and its own commit, the window a crash makes ambiguous."""

    def __init__(self, hold_at: int | None) -> None:
        super().__init__()
        self.hold_at = hold_at
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        if self.hold_at is not None and len(self.messages) == self.hold_at:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        return reply


@pytest.mark.parametrize("kill_point", ["between_messages", "inside_smtp_transaction"])
def test_killed_sender_resumes_and_nobody_gets_two_copies(app, database_url, tmp_path,
                                                          marketer, kill_point):
    inside = kill_point == "inside_smtp_transaction"
    inbox = Holding(hold_at=6 if inside else None)  # the test send is message 1
    readers = [f"reader{i:02}@example.org" for i in range(12)]
    with smtp_with(inbox) as url:
        app.config.update(TRACKER_SMTP_URL=url, TRACKER_PUBLIC_URL=PUBLIC)
        newsletter.import_subscribers(readers + ["gone@example.org"], proof="test",
                                      now=utcnow())
        newsletter.end_marketing("gone@example.org", source="objection", now=utcnow())
        campaign_id = ready_campaign(marketer).id
        db.session.commit()
        db.session.close()  # the sender process needs the SQLite file unlocked
        env = {**os.environ, "TRACKER_DATABASE_URL": database_url,
               "TRACKER_SECRET_KEY": app.config["SECRET_KEY"], "TRACKER_SMTP_URL": url,
               "TRACKER_PUBLIC_URL": PUBLIC, "TRACKER_CAMPAIGN_BATCH_SIZE": "4",
               "TRACKER_CAMPAIGN_SEND_DELAY": "0" if inside else "0.3",
               "TRACKER_INGEST_IN_PROCESS": "false", "TRACKER_SPOOL_DIR": str(tmp_path / "sp")}
        command = [sys.executable, "-m", "flask", "--app", "tracker", "campaigns", "send",
                   str(campaign_id)]
        sender = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        try:
            if inside:
                assert inbox.holding.wait(60), sender.communicate()
            else:
                wait_until(lambda: len(copies(inbox, campaign_id)) >= 5, timeout=60)
                time.sleep(0.1)  # within the 0.3 s pause after the 5th copy
        finally:
            sender.kill()  # SIGKILL: no cleanup, no last commit
            sender.communicate()
        inbox.release.set()
        before = len(copies(inbox, campaign_id))
        assert 0 < before < len(readers)
        assert campaign_status(campaign_id) == "sending"

        env["TRACKER_CAMPAIGN_SEND_DELAY"] = "0"
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr

    received = Counter(m["X-Envelope-To"] for m in inbox.messages
                       if m["Message-ID"].startswith(f"<c{campaign_id}.r"))
    assert received == dict.fromkeys(readers, 1)  # everyone exactly once; "gone" never
    report = campaigns.report(campaign_id)
    assert report.recipients == len(readers)
    assert report.pending == report.in_flight == report.failed == 0
    assert campaign_status(campaign_id) == "sent"
    if inside:
        # The copy in flight at the kill reached the server, but the sender could not know:
        # it is reported unknown, not sent again.
        assert (report.accepted, report.unknown) == (len(readers) - 1, 1)
        assert "in flight when the previous run stopped: 1" in resumed.stdout
    else:
        assert report.accepted + report.unknown == len(readers) and report.unknown <= 1


FATES = {
    # fate: (receives the campaign, with a pixel)
    "requested_only": (False, False),
    "confirmed": (True, False),
    "confirmed_tracking": (True, True),
    "unsubscribed": (False, False),
    "objected": (False, False),
    "objected_then_imported": (False, False),
    "objected_then_confirmed_again": (True, True),
    "objected_after_start": (False, False),
}
MAIL_TABLES = (CampaignRecipient, Campaign, Subscriber, SubscriptionRequest, OppositionEntry)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fates=st.lists(st.sampled_from(sorted(FATES)), min_size=1, max_size=6))
def test_only_consenting_people_receive_and_only_trackers_get_a_pixel(
        mail_app, smtp_server, marketer, fates):
    for table in MAIL_TABLES:
        db.session.execute(delete(table))
    db.session.commit()
    run = uuid.uuid4().hex[:8]
    people = {f"p{i}-{run}@example.org": fate for i, fate in enumerate(fates)}
    for email, fate in people.items():
        if fate == "requested_only":
            newsletter.request_subscription(NewsletterInput(email, True), lang="fr",
                                            now=utcnow())
        elif fate.startswith("objected_then"):
            add_to_opposition_list(email, "objection")
            db.session.commit()
            if fate == "objected_then_imported":
                newsletter.import_subscribers([email], proof="old list", now=utcnow())
            else:
                confirmed(smtp_server, email, tracking=True)
        else:
            confirmed(smtp_server, email, tracking=fate == "confirmed_tracking"
                      or fate == "objected_after_start")
            if fate == "unsubscribed":
                newsletter.end_marketing(email, source="unsubscribe", now=utcnow())
            elif fate == "objected":  # listed, though the subscriber row is still there
                add_to_opposition_list(email, "objection")
            db.session.commit()

    campaign = ready_campaign(marketer, subject=f"Lettre {run}")
    campaigns.start(campaign, marketer, now=utcnow())
    for email, fate in people.items():
        if fate == "objected_after_start":
            add_to_opposition_list(email, "objection")
    db.session.commit()
    campaigns.deliver(campaign.id)

    received = {email: messages for email, messages in copies(smtp_server.inbox, campaign.id)
                .items() if email in people}
    assert set(received) == {e for e, fate in people.items() if FATES[fate][0]}
    for email, messages in received.items():
        assert len(messages) == 1
        assert ("/o/" in html_of(messages[0])) == FATES[people[email]][1]
