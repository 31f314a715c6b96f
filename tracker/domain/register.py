"""The register of processing (GDPR Art. 30) as data: the single source of truth.

Everything that states or enforces a promise of the privacy policy reads it from here: the
retention job takes its periods, access checks take their roles (`roles_for`, `can_read`), and
the public page `/privacy/register` and the Art. 30 export are rendered from it.

Declaring personal data (tests/test_register.py enforces both directions):

1. tag the model column: ``mapped_column(..., info={"data_category": "<fideslang key>"})``;
2. add ``"<table>.<column>"`` to the ``columns`` of the processing it serves below, whose
   ``categories`` must include that key;
3. give its table a `RetentionRule` in that processing's ``rules`` (the retention job deletes,
   or anonymises, rows whose ``clock`` column is older than the period).

Pure data and rules: no Flask, no SQLAlchemy.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from tracker.domain.roles import CUSTOMER_RELATIONS, DPO, MARKETING

# The keys of fideslang's default taxonomy this register uses (https://ethyca.github.io/fideslang/).
DATA_CATEGORIES: dict[str, str] = {
    "user.device.cookie_id": "Cookie ID",
    "user.device.ip_address": "IP address",
    "user.device.browser_type": "Browser, OS and device type",
    "user.behavior": "Observed behaviour (e-mail opens)",
    "user.behavior.browsing_history": "Browsing history",
    "user.location.imprecise": "Imprecise location (country, city)",
    "user.privacy_preferences": "Privacy preferences",
    "user.contact.email": "E-mail address",
    "user.content.private": "Private content (what you wrote to us)",
}
DATA_SUBJECTS = ("visitor", "customer", "prospect", "employee")

# The CNIL caps audience-measurement data at 25 months; the policy default is 13.
MAX_ANALYTICS_MONTHS = 25
# A consent is asked again after 6 months (tracker.domain.consent.CONSENT_LIFETIME).
CONSENT_MONTHS = 6
# Past this age without a successful retention run, the dashboard warns.
RETENTION_RUN_MAX_AGE = timedelta(hours=48)

DELETE = "delete"
ANONYMISE = "anonymise"
ACTIONS = (DELETE, ANONYMISE)


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` shifted by calendar months, the day clamped to the target month's length."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True, slots=True)
class Period:
    """A retention period in calendar months and days; `setting` (months) may override it."""

    months: int = 0
    days: int = 0
    setting: str | None = None

    def resolve(self, config: Mapping[str, Any]) -> Period:
        """The period with its setting applied (the setting's value is in months)."""
        if self.setting is None:
            return self
        return replace(self, months=int(config[self.setting]), days=0)

    def cutoff(self, now: datetime) -> datetime:
        """Rows whose clock is before this moment are past the period."""
        return add_months(now, -self.months) - timedelta(days=self.days)

    def after(self, start: datetime) -> datetime:
        """When something that started at `start` reaches the end of the period."""
        return add_months(start, self.months) + timedelta(days=self.days)

    def describe(self) -> str:
        parts = []
        if self.months:
            years, months = divmod(self.months, 12)
            if years and not months:
                parts.append(f"{years} year" + ("s" if years > 1 else ""))
            else:
                parts.append(f"{self.months} month" + ("s" if self.months > 1 else ""))
        if self.days:
            parts.append(f"{self.days} day" + ("s" if self.days > 1 else ""))
        return " ".join(parts) or "at the next retention run"


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Rows of `table` matching `where` whose `clock` is older than `period` are removed."""

    key: str
    table: str
    clock: str
    period: Period | None  # None: ended by an event (e.g. unsubscription), not by age
    applies_to: str
    # Column -> allowed values; a row matches when every column holds one of its values.
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    action: str = DELETE
    # With ANONYMISE: the columns set to NULL; the row itself (statistics) stays.
    anonymise: tuple[str, ...] = ()

    def describe(self, config: Mapping[str, Any] | None = None) -> str:
        if self.period is None:
            return self.applies_to
        period = self.period.resolve(config) if config is not None else self.period
        verb = "anonymised" if self.action == ANONYMISE else "deleted"
        return f"{self.applies_to}: {verb} after {period.describe()}"


@dataclass(frozen=True, slots=True)
class Processing:
    """One line of the register: what is processed, why, on what basis, how long, by whom."""

    key: str
    name: str
    collected: str
    purpose: str
    data_use: str  # fideslang data use
    legal_basis: str
    data_subjects: tuple[str, ...]
    categories: tuple[str, ...]
    retention: str  # the period in words, as the policy states it
    rules: tuple[RetentionRule, ...]
    readers: frozenset[str]  # roles that may read this processing's personal data
    access: str  # the same, in the policy's words
    outside_eu: bool
    columns: tuple[str, ...]
    storage: str = "Database of the tracker, hosted in the EU"
    recipients: str = "None outside the departments named under access"
    notes: str = ""

    def retention_text(self, config: Mapping[str, Any]) -> str:
        """The retention in words, with the configured periods filled in."""
        return self.retention.format_map(config)


ANALYTICS_PERIOD = Period(months=13, setting="TRACKER_ANALYTICS_RETENTION_MONTHS")
CONSENT_PROOF_PERIOD = Period(months=19, setting="TRACKER_CONSENT_PROOF_RETENTION_MONTHS")
# Data-subject requests: how long an unconfirmed request, and an access export, live.
UNVERIFIED_REQUEST_PERIOD = Period(days=1)
EXPORT_PERIOD = Period(days=5)
CONSENT_BASIS = ("Consent (GDPR Art. 6(1)(a)); reading and writing the cookie needs it too "
                 "(ePrivacy Directive Art. 5(3), French Data Protection Act Art. 82)")

PROCESSINGS: tuple[Processing, ...] = (
    Processing(
        key="analytics",
        name="Website visits (audience measurement)",
        collected=("A random visitor id (cookie amn_vid), the IP address and its reverse-DNS "
                   "name, the organisation that registered the IP address, the pages visited "
                   "with the time each was loaded and how long it was on screen, the referring "
                   "site, the browser, operating system and device type."),
        purpose=("Learn which sections of amniotic.studio are popular, where visitors go and "
                 "how long they stay, to develop the site."),
        data_use="analytics.reporting.content_performance",
        legal_basis=CONSENT_BASIS,
        data_subjects=("visitor",),
        categories=("user.device.cookie_id", "user.device.ip_address",
                    "user.device.browser_type", "user.behavior.browsing_history"),
        retention=("{TRACKER_ANALYTICS_RETENTION_MONTHS} months after the visit, then "
                   "deleted (configurable, never more than 25 months). Nothing is recorded "
                   "without a live consent."),
        rules=(
            # Pageviews first: on PostgreSQL whole monthly partitions are dropped at once.
            RetentionRule("analytics.pageviews", "pageviews", "ts", ANALYTICS_PERIOD,
                          "pageviews"),
            RetentionRule("analytics.visits", "visits", "started_at", ANALYTICS_PERIOD,
                          "visits, with all their pageviews"),
        ),
        readers=frozenset({DPO}),
        access=("Raw visits: the data protection officer only, to answer authorities' "
                "requests. Staff reports show aggregate figures that identify nobody."),
        outside_eu=False,
        columns=("visits.visitor_id", "visits.ip", "visits.dns_name", "visits.browser",
                 "visits.browser_version", "visits.os", "visits.device"),
    ),
    Processing(
        key="location",
        name="Location of visits",
        collected="Country and city, derived from the IP address by a local GeoIP database.",
        purpose="Know where the site's audience comes from.",
        data_use="analytics.reporting.content_performance",
        legal_basis=CONSENT_BASIS + "; asked separately, and only with audience measurement",
        data_subjects=("visitor",),
        categories=("user.location.imprecise",),
        retention=("Deleted with the visit it belongs to "
                   "({TRACKER_ANALYTICS_RETENTION_MONTHS} months)."),
        rules=(),  # the columns live in `visits`: analytics.visits removes them
        readers=frozenset({DPO}),
        access="The data protection officer only; reports show aggregate figures.",
        outside_eu=False,
        columns=("visits.country", "visits.city"),
        notes="The IP address is never sent to a location provider: the lookup is local.",
    ),
    Processing(
        key="consent_proofs",
        name="Consent proofs",
        collected=("Each choice made in the banner: the three yes/no answers, the button "
                   "used, the date, the policy version, the language, the exact banner shown "
                   "(by its SHA-256) and, when audience measurement was accepted, the visitor "
                   "id. A refusal identifies nobody."),
        purpose=("Demonstrate that consent was given (GDPR Art. 7(1)) and honour refusals and "
                 "withdrawals."),
        data_use="essential.legal_obligation",
        legal_basis="Legal obligation (GDPR Art. 6(1)(c) and 7(1))",
        data_subjects=("visitor",),
        categories=("user.device.cookie_id", "user.privacy_preferences"),
        retention=("The choice is asked again after 6 months. Its proof is kept "
                   "{TRACKER_CONSENT_PROOF_RETENTION_MONTHS} months: a consent lasts 6 months "
                   "and the visits it allowed are kept {TRACKER_ANALYTICS_RETENTION_MONTHS} "
                   "months, so the proof must outlive the data it justifies (configurable, "
                   "never less than the analytics period + 6 months)."),
        rules=(RetentionRule("consent_proofs.consents", "consents", "created_at",
                             CONSENT_PROOF_PERIOD, "consent proofs"),),
        readers=frozenset({DPO}),
        access="The data protection officer.",
        outside_eu=False,
        columns=("consents.visitor_id",),
    ),
    Processing(
        key="contact_form",
        name="Contact form",
        collected="E-mail address and message.",
        purpose="Customer relationship management: answer your message.",
        data_use="essential.service.operations.support",
        legal_basis="Legitimate interest in answering the messages sent to us (Art. 6(1)(f))",
        data_subjects=("customer", "prospect"),
        categories=("user.contact.email", "user.content.private"),
        retention="1 year after the message, then deleted.",
        rules=(RetentionRule("contact_form.messages", "contact_messages", "created_at",
                             Period(months=12), "contact messages"),),
        readers=frozenset({CUSTOMER_RELATIONS}),
        access="Amniotic's customer relations department.",
        outside_eu=False,
        columns=("contact_messages.email", "contact_messages.message"),
    ),
    Processing(
        key="newsletter",
        name="Newsletter opt-in form",
        collected=("E-mail address, language, and the proof of the double opt-in (dates and "
                   "the version of the form's text)."),
        purpose="E-mail marketing: the studio's newsletter.",
        data_use="marketing.communications.email",
        legal_basis=("Consent, by double opt-in (GDPR Art. 6(1)(a); French Post and Electronic "
                     "Communications Code Art. L34-5)"),
        data_subjects=("customer", "prospect"),
        categories=("user.contact.email",),
        retention=("The opt-in period, until you unsubscribe. A subscription never confirmed "
                   "is deleted after 30 days. On unsubscription the address is deleted; only "
                   "a keyed hash of it (HMAC-SHA256) stays on the opposition list, 3 years "
                   "(the CNIL's minimum), so that the refusal is honoured."),
        rules=(
            RetentionRule("newsletter.pending", "subscription_requests", "requested_at",
                          Period(days=30), "subscriptions never confirmed"),
            RetentionRule("newsletter.subscribers", "subscribers", "confirmed_at", None,
                          "confirmed addresses: until unsubscription, which deletes them"),
            RetentionRule("newsletter.opposition", "opposition_list", "created_at",
                          Period(months=36), "opposition list hashes"),
        ),
        readers=frozenset({MARKETING}),
        access="The marketing department.",
        outside_eu=False,
        columns=("subscribers.email", "subscription_requests.email"),
    ),
    Processing(
        key="email_open_tracking",
        name="E-mail open tracking",
        collected=("Whether and when a newsletter you received was opened (an image loaded "
                   "from our server), only if you allowed it when subscribing."),
        purpose="Optimise the usefulness and interest of our e-mails.",
        data_use="analytics.reporting.campaign_insights",
        legal_basis="Consent, asked separately when subscribing (Art. 6(1)(a))",
        data_subjects=("customer", "prospect"),
        categories=("user.behavior",),
        retention=("Detached from the subscriber when they unsubscribe, and at most 13 months "
                   "after the e-mail was sent: only the campaign's anonymous open count "
                   "remains."),
        rules=(RetentionRule("email_open_tracking.opens", "campaign_recipients", "sent_at",
                             Period(months=13), "opens of an e-mail", action=ANONYMISE,
                             anonymise=("subscriber_id",)),),
        readers=frozenset({MARKETING}),
        access="The marketing department.",
        outside_eu=False,
        columns=("campaign_recipients.opened_at", "campaign_recipients.open_count"),
    ),
    Processing(
        key="audit_log",
        name="Staff audit log",
        collected=("Which member of staff did what and when: every read of personal data (a "
                   "contact message, the subscriber list, a request's export, an authorities' "
                   "lookup) and every administrative action (accounts and roles, retention "
                   "runs, erasures). It holds no visitor data."),
        purpose="Monitor the use of personal data and prove that access rules are applied.",
        data_use="essential.service.security",
        legal_basis="Legitimate interest in securing personal data, as Art. 32 requires "
                    "(Art. 6(1)(f))",
        data_subjects=("employee",),
        categories=("user.contact.email",),
        retention=("1 year (the CNIL recommends 6 months to 1 year for access logs); the "
                   "oldest entries are then pruned, leaving a signed anchor so the chain "
                   "still verifies."),
        rules=(RetentionRule("audit_log.entries", "audit_log", "created_at",
                             Period(months=12), "audit entries"),),
        readers=frozenset({DPO}),
        access="The data protection officer.",
        outside_eu=False,
        columns=("audit_log.actor_label",),
    ),
    Processing(
        key="data_subject_requests",
        name="Requests to exercise your rights",
        collected=("E-mail address, the right exercised, what you wrote, a one-time "
                   "verification code (stored only as a keyed hash), the decision and, for "
                   "an access request, the export prepared for you."),
        purpose=("Answer requests to access, rectify or erase personal data, or to object to "
                 "direct marketing (GDPR Art. 12 to 21)."),
        data_use="essential.legal_obligation",
        legal_basis="Legal obligation (GDPR Art. 6(1)(c) and 12)",
        data_subjects=("customer", "prospect", "visitor"),
        categories=("user.contact.email", "user.content.private"),
        retention=("Unconfirmed requests: 1 day. An export can be downloaded for 5 days, then "
                   "it is deleted. Handled requests: 1 year, then anonymised (only the kind "
                   "of request, its dates and outcome remain)."),
        rules=(
            RetentionRule("data_subject_requests.codes", "verification_codes", "created_at",
                          UNVERIFIED_REQUEST_PERIOD, "verification codes"),
            RetentionRule("data_subject_requests.unverified", "privacy_requests",
                          "created_at", UNVERIFIED_REQUEST_PERIOD, "unconfirmed requests",
                          where=(("status", ("unverified",)),)),
            RetentionRule("data_subject_requests.exports", "privacy_requests",
                          "decided_at", EXPORT_PERIOD, "exports", action=ANONYMISE,
                          anonymise=("export_json",)),
            RetentionRule("data_subject_requests.closed", "privacy_requests", "decided_at",
                          Period(months=12), "handled requests",
                          where=(("status", ("approved", "denied")),), action=ANONYMISE,
                          anonymise=("email", "details", "export_json")),
        ),
        readers=frozenset({DPO}),
        access="The data protection officer.",
        outside_eu=False,
        columns=("privacy_requests.email", "privacy_requests.details",
                 "privacy_requests.export_json"),
    ),
    Processing(
        key="authority_requests",
        name="Authorities' requests",
        collected=("The IP address or network looked up, the time window, the authority, "
                   "the legal reference of its request and who ran the lookup."),
        purpose=("Answer the police and other authorities entitled by law to ask who used an "
                 "IP address."),
        data_use="third_party_sharing.legal_obligation",
        legal_basis="Legal obligation (GDPR Art. 6(1)(c)), on a requisition citing its legal "
                    "basis",
        data_subjects=("visitor",),
        categories=("user.device.ip_address",),
        retention="1 year after the lookup, then deleted.",
        rules=(RetentionRule("authority_requests.lookups", "authority_lookups", "created_at",
                             Period(months=12), "authorities' lookups"),),
        readers=frozenset({DPO}),
        access="The data protection officer only.",
        outside_eu=False,
        columns=("authority_lookups.network",),
        recipients="The requesting authority",
    ),
)

BY_KEY: dict[str, Processing] = {p.key: p for p in PROCESSINGS}


class UnknownProcessing(KeyError):
    """A processing key that is not in the register (a typo must not grant or deny silently)."""


def processing(key: str) -> Processing:
    try:
        return BY_KEY[key]
    except KeyError:
        raise UnknownProcessing(f"no processing {key!r} in the register") from None


def roles_for(processing_key: str) -> frozenset[str]:
    """The roles that may read the personal data of a processing."""
    return processing(processing_key).readers


def can_read(role: str, processing_key: str) -> bool:
    """True when the register lets `role` read the personal data of the processing."""
    return role in roles_for(processing_key)


def readable_by(role: str) -> tuple[str, ...]:
    """The keys of the processings whose personal data `role` may read."""
    return tuple(p.key for p in PROCESSINGS if role in p.readers)


def rules() -> tuple[RetentionRule, ...]:
    """Every rule the retention job applies by age, in order (event-ended ones excluded)."""
    return tuple(rule for p in PROCESSINGS for rule in p.rules if rule.period is not None)


def declared_columns() -> dict[str, str]:
    """`table.column` -> the key of the processing that declares it."""
    return {column: p.key for p in PROCESSINGS for column in p.columns}


class RegisterSettingsError(ValueError):
    """Retention settings that would break a promise of the register."""


def check_settings(config: Mapping[str, Any]) -> None:
    """Raise RegisterSettingsError when the configured periods contradict the register."""
    analytics = int(config["TRACKER_ANALYTICS_RETENTION_MONTHS"])
    proofs = int(config["TRACKER_CONSENT_PROOF_RETENTION_MONTHS"])
    if not 1 <= analytics <= MAX_ANALYTICS_MONTHS:
        raise RegisterSettingsError(
            f"TRACKER_ANALYTICS_RETENTION_MONTHS={analytics}: must be 1 to "
            f"{MAX_ANALYTICS_MONTHS} (the CNIL's ceiling for audience measurement)")
    if proofs < analytics + CONSENT_MONTHS:
        raise RegisterSettingsError(
            f"TRACKER_CONSENT_PROOF_RETENTION_MONTHS={proofs}: must be at least "
            f"{analytics + CONSENT_MONTHS} (analytics period + {CONSENT_MONTHS} months), so "
            "that every kept visit can still show the consent that allowed it")
