"""The banner script as served, and the archive of every version a proof can point to."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from tracker.extensions import db
from tracker.models import BannerVersion

PLACEHOLDER = b"__POLICY_VERSION__"


@dataclass(frozen=True)
class Banner:
    """The exact bytes served at /static/consent-banner.js and their SHA-256."""

    content: bytes
    sha256: str

    @classmethod
    def load(cls, path: Path, policy_version: str) -> Banner:
        """Read the script and fill in the current policy version (part of what is hashed)."""
        content = path.read_bytes().replace(PLACEHOLDER, policy_version.encode())
        return cls(content=content, sha256=hashlib.sha256(content).hexdigest())

    def archive(self, now: datetime) -> str:
        """Store this version once (idempotent) and return its hash."""
        if db.session.scalar(select(BannerVersion.sha256).filter_by(sha256=self.sha256)):
            return self.sha256
        db.session.add(BannerVersion(sha256=self.sha256, content=self.content.decode(),
                                     first_served_at=now))
        return self.sha256
