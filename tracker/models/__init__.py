"""Database models. Each area keeps its tables in its own module."""

from tracker.models.analytics import BannerVersion, Consent, Page, Pageview, Visit
from tracker.models.staff import ApiToken, User

__all__ = ["ApiToken", "BannerVersion", "Consent", "Page", "Pageview", "User", "Visit"]
