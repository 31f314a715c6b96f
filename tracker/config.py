"""Settings as data: one table drives defaults, environment overrides and the README.

Every setting is read from a ``TRACKER_<NAME>`` environment variable. A test asserts that
each one is documented in the README.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", None,
            "SQLAlchemy URL. Default: a SQLite file `tracker.sqlite3` in the instance folder. "
            "PostgreSQL: `postgresql+psycopg://user:pass@host/db`."),
    Setting("SECRET_KEY", None,
            "Signs sessions and links. Required in production; a random per-process key "
            "is used (and a warning logged) when unset."),
    Setting("SITE_ORIGINS", ["http://127.0.0.1:5000", "http://localhost:5000"],
            "Comma-separated origins allowed to send consents and beacons (CORS) and whose "
            "URLs are accepted in beacons.", _csv),
    Setting("GEOIP_ASN_DB", None, "Path to a GeoLite2/GeoIP2 ASN `.mmdb` (organisation)."),
    Setting("GEOIP_CITY_DB", None, "Path to a GeoLite2/GeoIP2 City `.mmdb` (country, city)."),
    Setting("DNS_SERVERS", [], "Comma-separated `ip` or `ip:port` for reverse DNS; the "
            "system resolver when unset.", _csv),
    Setting("DNS_TIMEOUT", 1.0, "Seconds one reverse-DNS lookup may take.", float),
    Setting("TRUSTED_PROXIES", 0, "How many reverse proxies in front may set "
            "`X-Forwarded-For`. 0 ignores the header.", int),
    Setting("POLICY_VERSION", "2026-11-01",
            "Version of the privacy policy; a new value makes the banner ask again."),
    Setting("SPOOL_DIR", None, "Directory of the durable event spool. Default: "
            "`spool/` in the instance folder."),
    Setting("INGEST_INTERVAL", 0.5, "Seconds between two drains of the spool into the "
            "database.", float),
    Setting("INGEST_IN_PROCESS", True, "Run the spool drainer as a thread of each web "
            "process. Set to false when a separate `flask --app tracker ingest` runs.", _bool),
    Setting("VISIT_TIMEOUT_MINUTES", 30, "Inactivity that ends a visit.", int),
    Setting("MAX_BODY_BYTES", 8192, "Largest request body accepted by the collector "
            "and consent endpoints.", int),
    Setting("COOKIE_DOMAIN", None, "Domain for the `amn_*` cookies set by the collector "
            "(e.g. `.amniotic.studio` when the collector is a subdomain of the site)."),
    Setting("SECURE_COOKIES", False, "Mark cookies `Secure` (enable behind HTTPS).", _bool),
    Setting("TIMEZONE", "Europe/Paris", "Time zone of reports' days and hours."),
    Setting("RATELIMIT_STORAGE", "memory://", "Where rate-limit counters live: `memory://` "
            "for one process, `redis://host:6379` when several processes share the work."),
    Setting("SMTP_URL", None, "Outgoing mail: `smtp://host:port`, `smtp+starttls://user:pass@"
            "host:587` or `smtps://user:pass@host:465`. Mail is refused when unset."),
    Setting("MAIL_FROM", "Amniotic <contact@amniotic.studio>", "Sender of outgoing e-mail."),
    Setting("PUBLIC_URL", "http://127.0.0.1:5000", "Base URL of this tracker, used in links "
            "sent by e-mail."),
    Setting("SESSION_IDLE_MINUTES", 30, "A staff session ends after this much inactivity.", int),
    Setting("SESSION_MAX_HOURS", 12, "A staff session ends this long after sign-in.", int),
    Setting("REAUTH_MINUTES", 5, "Sensitive actions (role changes, exports of personal data) "
            "ask for the password again when the last sign-in is older than this.", int),
    Setting("LOGIN_RATE_LIMIT", "10 per minute", "Login attempts allowed per client IP."),
    Setting("FORM_RATE_LIMIT", "5 per minute;30 per hour", "Submissions of each public form "
            "(contact, newsletter) allowed per client IP."),
    Setting("FORM_TOKEN_HOURS", 12, "Hours a displayed public form may still be sent.", int),
    Setting("NEWSLETTER_CONFIRM_HOURS", 72, "Hours a newsletter confirmation link stays "
            "valid; an unconfirmed request is then deleted.", int),
    Setting("CAMPAIGN_BATCH_SIZE", 50, "Campaign recipients handled per SMTP connection.", int),
    Setting("CAMPAIGN_SEND_DELAY", 0.0, "Seconds to wait after each campaign message "
            "(throttles sending to the SMTP provider's rate).", float),
    Setting("LIST_UNSUBSCRIBE_MAILTO", None, "Address of the `mailto:` in campaigns' "
            "`List-Unsubscribe` header (staff record those requests with `flask --app tracker "
            "mail stop`). Default: the address of TRACKER_MAIL_FROM."),
    Setting("SECTIONS", "", "Sections of the site for the reports: comma-separated "
            "`prefix=Name` or `re:pattern=Name` rules, first match wins (e.g. "
            "`/projets/=Projets,re:^/journal/=Journal`); other pages take their first path "
            "segment. Changes apply to past traffic too."),
    Setting("ANALYTICS_RETENTION_MONTHS", 13, "Months raw visits and pageviews are kept before "
            "the retention job deletes them (1 to 25; the CNIL's ceiling is 25).", int),
    Setting("CONSENT_PROOF_RETENTION_MONTHS", 19, "Months a consent proof is kept; at least "
            "the analytics period + 6 months, so each kept visit can show its consent.", int),
    Setting("RETENTION_BATCH_SIZE", 5000, "Rows the retention job deletes per transaction; "
            "small batches keep the collector from waiting on locks.", int),
    Setting("PRIVACY_RATE_LIMIT", "10 per minute", "Requests per client IP to the visitors' "
            "\"see/delete my data\" endpoints and to the rights-request forms."),
    Setting("CONSENT_RATE_LIMIT", "60 per minute", "Banner decisions (POST /api/consent) "
            "allowed per client IP."),
    Setting("COLLECT_RATE_LIMIT", "600 per minute", "Beacons (POST /api/collect) allowed per "
            "client IP. Generous: a page sends a few, and many visitors may share an address "
            "(offices, mobile carriers)."),
    Setting("SPAM_REFERRERS", [], "Comma-separated referrer domains treated as spam, besides "
            "the built-in list (tracker/domain/traffic_quality.py); a domain covers its "
            "subdomains. Visits they refer are flagged like bots and left out of reports.",
            _csv),
)


def load(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the settings, each overridden by its ``TRACKER_`` variable when set."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(f"TRACKER_{setting.name}")
        value = setting.default if raw in (None, "") else setting.parse(raw)
        config[f"TRACKER_{setting.name}"] = value
    return config
