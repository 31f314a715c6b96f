"""Database models. Each area keeps its tables in its own module."""

from tracker.models.analytics import BannerVersion, Consent, Page, Pageview, Visit
from tracker.models.mail import (
    Campaign,
    CampaignRecipient,
    ContactMessage,
    FormText,
    OppositionEntry,
    Subscriber,
    SubscriptionRequest,
)
from tracker.models.privacy import (
    AuditEntry,
    AuditHead,
    AuthorityLookup,
    ErasureRecord,
    PrivacyRequest,
    RetentionRun,
    VerificationCode,
)
from tracker.models.rollups import (  # noqa: F401  (their tables and triggers)
    RollupDirty,
    RollupJourneyDay,
    RollupPageDay,
    RollupSketchMonth,
    RollupState,
    RollupTransitionDay,
    RollupVisitDay,
)
from tracker.models.staff import ApiToken, User

__all__ = [
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "AuthorityLookup",
    "ErasureRecord",
    "PrivacyRequest",
    "RetentionRun",
    "VerificationCode",
    "BannerVersion",
    "Campaign",
    "CampaignRecipient",
    "Consent",
    "ContactMessage",
    "FormText",
    "OppositionEntry",
    "Page",
    "Pageview",
    "Subscriber",
    "SubscriptionRequest",
    "User",
    "Visit",
]
