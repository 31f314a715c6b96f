"""Database models. Each area keeps its tables in its own module."""

from tracker.models.analytics import BannerVersion, Consent, Page, Pageview, Visit
from tracker.models.mail import ContactMessage, OppositionEntry, Subscriber
from tracker.models.staff import ApiToken, User

__all__ = [
    "ApiToken",
    "BannerVersion",
    "Consent",
    "ContactMessage",
    "OppositionEntry",
    "Page",
    "Pageview",
    "Subscriber",
    "User",
    "Visit",
]
