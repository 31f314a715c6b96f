"""Small actions the tests repeat: deciding in the banner, sending beacons."""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask.testing import FlaskClient

SITE = "https://amniotic.studio"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
# In the MaxMind test databases: AS29518 Bredband2 AB, Linköping SE.
KNOWN_IP = "89.160.20.112"


def hex32() -> str:
    return secrets.token_hex(16)


def decide(client: FlaskClient, *, analytics: bool = True, location: bool = False,
           marketing: bool = False, visitor_id: str | None = None,
           policy_version: str = "2026-11-01", origin: str | None = SITE,
           ip: str = "127.0.0.1") -> dict[str, Any]:
    """POST a banner decision and return the response body (plus the visitor id sent)."""
    if analytics and visitor_id is None:
        visitor_id = hex32()
    response = client.post("/api/consent", json={
        "visitor_id": visitor_id,
        "choices": {"analytics": analytics, "location": location, "marketing": marketing},
        "policy_version": policy_version, "lang": "fr",
    }, headers={"Origin": origin} if origin else {}, environ_base={"REMOTE_ADDR": ip})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def beacon(client: FlaskClient, consent: dict[str, Any] | None, *, path: str = "/",
           ip: str = KNOWN_IP, user_agent: str = FIREFOX, **fields: Any):
    """Send a pageview (or other event via fields) as navigator.sendBeacon does."""
    body = {"type": "pageview", "event_id": hex32(), "url": SITE + path, "referrer": "",
            "title": "Amniotic"}
    if consent is not None:
        body.update(visitor_id=consent["visitor_id"], consent_id=consent["consent_id"])
    body.update(fields)
    return client.post("/api/collect", data=json.dumps(body), content_type="text/plain",
                       headers={"User-Agent": user_agent, "Origin": SITE},
                       environ_base={"REMOTE_ADDR": ip})


PASSWORD = "correct horse battery staple"


def make_user(email: str, role: str) -> Any:
    """Create an account; admin and dpo get an enrolled authenticator (their second factor)."""
    from tracker.clock import utcnow
    from tracker.domain import totp
    from tracker.extensions import db
    from tracker.services import staff

    user = staff.create_user(email, PASSWORD, role, now=utcnow())
    if staff.needs_second_factor(user):
        user.totp_secret = totp.new_secret()
        db.session.commit()
    return user


def csrf_token(client: FlaskClient, path: str) -> str:
    import re

    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, f"the form at {path} carries a CSRF token"
    return token.group(1)


def next_totp_code(email: str) -> str:
    """A code the account has not used yet (each code is accepted once)."""
    import time

    from sqlalchemy import select

    from tracker.domain import totp
    from tracker.extensions import db
    from tracker.models import User

    user = db.session.scalar(select(User).filter_by(email=email))
    db.session.refresh(user)
    # The current step, not the oldest accepted one: a step boundary may pass before the POST.
    step = max(totp.step_of(time.time()), user.totp_last_step + 1)
    assert step <= totp.step_of(time.time()) + totp.WINDOW, "signed in too often this minute"
    return totp.code_at(user.totp_secret, step)


def login(client: FlaskClient, email: str, password: str = PASSWORD):
    """Sign in through the real forms, CSRF tokens (and the second factor) included."""
    response = client.post("/staff/login", data={
        "email": email, "password": password, "csrf_token": csrf_token(client, "/staff/login")})
    if response.status_code == 302 and response.headers["Location"].endswith("/staff/2fa"):
        response = client.post("/staff/2fa", data={
            "code": next_totp_code(email), "csrf_token": csrf_token(client, "/staff/2fa")})
    return response


def submit_public_form(client: FlaskClient, path: str, fields: dict[str, str], *,
                       origin: str | None = "http://localhost", **kwargs: Any):
    """Fill an embeddable public form (/forms/contact, /forms/newsletter) as a browser would:
    GET it for its signed token, then POST from the iframe's own origin."""
    import re

    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', page)
    assert token, f"the form at {path} carries a signed token"
    data = {"token": token.group(1), "website": "", **fields}
    headers = {"Origin": origin} if origin else {}
    return client.post(path, data=data, headers=headers, **kwargs)


def mail_links(message: Any) -> list[str]:
    """Every http(s) URL in the plain-text part of a received e-mail."""
    import re

    body = message.get_body(("plain",)) or message
    return re.findall(r"https?://\S+", body.get_content())


# -- privacy operations: rows with chosen dates, and a dump of the whole database ------------

def seed_consent(visitor_id: str | None, at: Any, *, analytics: bool = True) -> Any:
    """A consent proof given at `at` (its banner version created if needed)."""
    from datetime import timedelta

    from tracker.extensions import db
    from tracker.models import BannerVersion, Consent

    if db.session.get(BannerVersion, "0" * 64) is None:
        db.session.add(BannerVersion(sha256="0" * 64, content="banner", first_served_at=at))
    consent = Consent(id=hex32(), visitor_id=visitor_id if analytics else None,
                      analytics=analytics, location=analytics, marketing=False,
                      method="accept_all" if analytics else "refuse_all",
                      policy_version="2026-11-01", lang="fr", banner_sha256="0" * 64,
                      created_at=at, expires_at=at + timedelta(days=182))
    db.session.add(consent)
    db.session.commit()
    return consent


def seed_visit(consent: Any, at: Any, *, ip: str = KNOWN_IP, dns_name: str | None = None,
               pageviews: int = 2) -> Any:
    """A visit of the consent's visitor starting at `at`, with pageviews a minute apart."""
    from datetime import timedelta

    from sqlalchemy import select

    from tracker.extensions import db
    from tracker.models import Page, Pageview, Visit

    page = db.session.scalar(select(Page).filter_by(path="/projets/"))
    if page is None:
        page = Page(path="/projets/", section="projets", title="Projets")
        db.session.add(page)
        db.session.flush()
    visit = Visit(visitor_id=consent.visitor_id, consent_id=consent.id, started_at=at,
                  last_seen_at=at + timedelta(minutes=max(pageviews - 1, 0)),
                  entry_page_id=page.id, exit_page_id=page.id, pageviews=pageviews,
                  engaged_ms=1000 * pageviews, ip=ip, dns_name=dns_name,
                  organization="Bredband2 AB", asn=29518, country="SE", city="Linköping",
                  browser="Firefox", browser_version="128", os="Linux", device="desktop",
                  is_bot=False)
    db.session.add(visit)
    db.session.flush()
    for i in range(pageviews):
        db.session.add(Pageview(event_id=hex32(), visit_id=visit.id, page_id=page.id,
                                ts=at + timedelta(minutes=i), engaged_ms=1000))
    db.session.commit()
    return visit


def seed_contact(email: str, at: Any, message: str = "Bonjour, un devis ?") -> Any:
    from tracker.extensions import db
    from tracker.models import ContactMessage

    row = ContactMessage(email=email, message=message, lang="fr", created_at=at)
    db.session.add(row)
    db.session.commit()
    return row


def seed_subscriber(email: str, at: Any, *, pending: bool = False) -> Any:
    """A confirmed subscriber (or, with pending, an unconfirmed opt-in request) from `at`."""
    from tracker.extensions import db
    from tracker.models import Subscriber, SubscriptionRequest

    model = SubscriptionRequest if pending else Subscriber
    fields = {"requested_at": at} if pending else {"requested_at": at, "confirmed_at": at}
    row = model(email=email, open_tracking=True, lang="fr", form_version="0" * 64,
                token_sha256=hex32() + hex32(), **fields)
    db.session.add(row)
    db.session.commit()
    return row


def seed_recipient(subscriber: Any, sent_at: Any, *, opened: bool = True) -> Any:
    """A copy of a campaign sent to a subscriber at `sent_at` (opened once, by default)."""
    from tracker.extensions import db
    from tracker.models import Campaign, CampaignRecipient

    campaign = Campaign(subject="Nouvelles", html="<p>x</p>", text="x", lang="fr",
                        status="sent", created_at=sent_at, edited_at=sent_at)
    db.session.add(campaign)
    db.session.flush()
    row = CampaignRecipient(campaign_id=campaign.id, subscriber_id=subscriber.id, state="sent",
                            pixel=True, attempts=1, sent_at=sent_at,
                            opened_at=sent_at if opened else None, open_count=int(opened))
    db.session.add(row)
    db.session.commit()
    return row


def dump_database() -> str:
    """Every row of every table as text: to search for traces of personal data."""
    from sqlalchemy import select

    from tracker.extensions import db

    lines = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            lines.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(lines)


def stale_rows(now: Any, config: Any, *, written_before: Any = None) -> dict[str, int]:
    """Rows past their register period, per retention rule (an independent re-statement of
    the rules: deleted rows must be gone, anonymised columns empty).

    `written_before`: when `now` is simulated in the future, rows written at the real time
    after the run started (the run's own audit entries) are not counted.
    """
    from sqlalchemy import and_, func, or_, select

    from tracker.domain import register
    from tracker.extensions import db

    stale = {}
    for rule in register.rules():
        table = db.metadata.tables[rule.table]
        cutoff = rule.period.resolve(config).cutoff(now)
        if written_before is not None:
            cutoff = min(cutoff, written_before)
        conditions = [table.c[rule.clock] < cutoff,
                      *(table.c[col].in_(values) for col, values in rule.where)]
        if rule.action == register.ANONYMISE:
            conditions.append(or_(*(table.c[col].is_not(None) for col in rule.anonymise)))
        stale[rule.key] = db.session.scalar(
            select(func.count()).select_from(table).where(and_(*conditions))) or 0
    return stale


class Traffic:
    """Visits with chosen times, stored through the collector's own `Ingest.store` (as the
    spool drainer does): real consents, real enrichment, real sessionization."""

    def __init__(self, site: str = SITE) -> None:
        self.site = site
        self.events: list[dict[str, Any]] = []

    def visitor(self, at: Any, *, location: bool = False) -> dict[str, str]:
        """A visitor who accepted analytics at `at` (and location when asked)."""
        from tracker.clock import utcnow
        from tracker.domain.consent import Choices
        from tracker.domain.payloads import ConsentDecision
        from tracker.services import runtime
        from tracker.services.consent import record_decision

        banner = runtime.banner().archive(utcnow())
        record = record_decision(ConsentDecision(
            visitor_id=hex32(), choices=Choices(True, location, False),
            policy_version=runtime.ingest().policy_version, lang="fr",
            method="custom"), banner_sha256=banner, now=at)
        return {"visitor_id": record.visitor_id, "consent_id": record.id}

    def visit(self, who: dict[str, str], start: Any, pages: list[tuple[str, float, int]], *,
              referrer: str = "", utm: str = "", user_agent: str = FIREFOX,
              ip: str = KNOWN_IP, title: str = "Amniotic") -> None:
        """Pageviews at `start + seconds`, each followed by its engagement (when > 0 ms)."""
        from datetime import timedelta

        for index, (path, seconds, engaged_ms) in enumerate(pages):
            at = start + timedelta(seconds=seconds)
            event_id = hex32()
            url = self.site + path + (("?" + utm) if utm and index == 0 else "")
            base = {**who, "url": url, "title": title, "ip": ip, "user_agent": user_agent,
                    "referrer": referrer if index == 0 else self.site + pages[index - 1][0]}
            self.events.append({"type": "pageview", "event_id": event_id,
                                "pageview_id": None, "engaged_ms": 0,
                                "received_at": at.isoformat(), **base})
            if engaged_ms:
                self.events.append({
                    "type": "engagement", "event_id": hex32(), "pageview_id": event_id,
                    "engaged_ms": engaged_ms,
                    "received_at": (at + timedelta(milliseconds=engaged_ms)).isoformat(),
                    **base})

    def store(self) -> None:
        from tracker.services import runtime

        events = sorted(self.events, key=lambda e: e["received_at"])
        self.events = []
        assert runtime.ingest().store(events) == []


# -- collector processes: gunicorn subprocesses for the crash and multi-collector tests ----

class CollectorProcess:
    """`gunicorn 'tracker:create_app()'` on its own free port, as production serves it.

    Its own process group, so `kill()` sends SIGKILL to the master and every worker at once.
    """

    def __init__(self, env: dict[str, str], log: Any, *, workers: int = 2,
                 port: int | None = None) -> None:
        from tests.support.postgres import free_port

        self.env = env
        self.log = log
        self.workers = workers
        self.port = port or free_port()
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> CollectorProcess:
        """Start and wait until a worker answers (the master listens before apps load)."""
        import os
        import subprocess
        import sys
        import time
        from pathlib import Path

        gunicorn = Path(sys.executable).parent / "gunicorn"
        command = [str(gunicorn), "--bind", f"127.0.0.1:{self.port}", "--workers",
                   str(self.workers), "--graceful-timeout", "2", "--log-level", "warning",
                   "tracker:create_app()"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env={**os.environ, **self.env},
                                            stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn exited; see {self.log}"
            if self.send(b"{}", timeout=1.0)[0] == 422:
                return self
            time.sleep(0.1)
        raise TimeoutError(f"collector on port {self.port} never answered; see {self.log}")

    def send(self, body: bytes, *, ip: str = KNOWN_IP, timeout: float = 5.0,
             ) -> tuple[int, str | None]:
        """POST a beacon body; (HTTP status, Retry-After), status 0 when no answer came."""
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("POST", "/api/collect", body=body, headers={
                "Content-Type": "text/plain", "Origin": SITE, "User-Agent": FIREFOX,
                "X-Forwarded-For": ip})
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("Retry-After")
        except (OSError, http.client.HTTPException):  # refused, reset or cut by a kill
            return 0, None
        finally:
            connection.close()

    def kill(self) -> None:
        """SIGKILL the whole server: no shutdown code runs anywhere."""
        import os
        import signal

        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


def collector_env(database_url: str, spool: Any, dns_address: str) -> dict[str, str]:
    """Settings of a collector subprocess: its database, its spool, a fast drainer."""
    return {
        "TRACKER_DATABASE_URL": database_url,
        "TRACKER_SPOOL_DIR": str(spool),
        "TRACKER_SITE_ORIGINS": SITE,
        "TRACKER_SECRET_KEY": "test-secret",
        "TRACKER_TRUSTED_PROXIES": "1",
        "TRACKER_DNS_SERVERS": dns_address,
        "TRACKER_DNS_TIMEOUT": "0.5",
        "TRACKER_INGEST_INTERVAL": "0.2",
        "TRACKER_INGEST_IN_PROCESS": "true",
    }


def beacon_body(consent: dict[str, Any], *, event_id: str | None = None, path: str = "/",
                **fields: Any) -> bytes:
    """A pageview beacon (or another event via fields) as the banner sends it."""
    body = {"type": "pageview", "event_id": event_id or hex32(), "url": SITE + path,
            "referrer": "", "title": "Amniotic", "visitor_id": consent["visitor_id"],
            "consent_id": consent["consent_id"], **fields}
    return json.dumps(body).encode()


def migrated_database_with_consents(url: str, tmp_path: Any, visitors: int,
                                    ) -> list[dict[str, Any]]:
    """Build the schema with the Alembic migrations (as production does) and record an
    analytics consent for each of `visitors` visitors through the real API. Each visitor
    also gets an address of its own ("ip"), as the collector limits beacons per address."""
    from tests.conftest import app_config, create_schema
    from tracker import create_app
    from tracker.extensions import db

    create_schema(url, tmp_path / "schema-spool", migrations=True)
    app = create_app(app_config(url, tmp_path / "consents"))
    with app.app_context():
        client = app.test_client()
        consents = [{**decide(client), "ip": f"198.51.100.{number + 1}"}
                    for number in range(visitors)]
        db.session.remove()
        db.engine.dispose()
    return consents
