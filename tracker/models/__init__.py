"""Database models. Each area keeps its tables in its own module."""

from tracker.models.analytics import BannerVersion, Consent, Page, Pageview, Visit

__all__ = ["BannerVersion", "Consent", "Page", "Pageview", "Visit"]
