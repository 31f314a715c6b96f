"""Consent policy: what may be recorded, given a decision and a purpose. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

PURPOSES = ("analytics", "location", "marketing")
METHODS = ("accept_all", "refuse_all", "custom")
LANGS = ("fr", "en")
# CNIL: ask again after 6 months; the visitor cookie lives at most 13 months.
CONSENT_LIFETIME = timedelta(days=182)
VISITOR_COOKIE_LIFETIME = timedelta(days=395)
HEX32 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class Choices:
    analytics: bool
    location: bool
    marketing: bool

    @property
    def flags(self) -> str:
        """The three purposes as '0'/'1' characters, as stored in the amn_consent cookie."""
        return "".join("1" if getattr(self, p) else "0" for p in PURPOSES)


@dataclass(frozen=True, slots=True)
class ConsentState:
    """What the collector needs to know about one stored decision."""

    consent_id: str
    visitor_id: str | None
    choices: Choices
    policy_version: str
    expires_at: datetime
    withdrawn_at: datetime | None


def permits(state: ConsentState | None, *, visitor_id: str | None, purpose: str,
            at: datetime, policy_version: str) -> bool:
    """True when `state` is a live decision of this visitor granting `purpose` at time `at`."""
    if state is None or visitor_id is None or state.visitor_id != visitor_id:
        return False
    if state.policy_version != policy_version:
        return False
    if at >= state.expires_at or (state.withdrawn_at is not None and at >= state.withdrawn_at):
        return False
    # Location is derived from the visit, so it can never outlive analytics.
    return state.choices.analytics and bool(getattr(state.choices, purpose))


def method_of(choices: Choices) -> str:
    """Classify a decision for the consent report when the banner did not say."""
    granted = [getattr(choices, p) for p in PURPOSES]
    if all(granted):
        return "accept_all"
    return "refuse_all" if not any(granted) else "custom"
