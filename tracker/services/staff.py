"""Staff accounts: creation, password checks with lockout, API tokens."""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, VerifyMismatchError
from sqlalchemy import select

from tracker.domain import totp
from tracker.domain.roles import ROLES, SECOND_FACTOR_ROLES
from tracker.extensions import db
from tracker.models import ApiToken, User

# argon2id with the library's defaults (RFC 9106 "low memory" profile).
hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 12
LOCKOUT_AFTER = 5
LOCKOUT_FOR = timedelta(minutes=15)
# A hash to verify against when the e-mail is unknown, so timing does not reveal accounts.
_DUMMY_HASH = hasher.hash(secrets.token_hex(16))


class StaffError(ValueError):
    """An account operation that cannot be done, with a message for the operator."""


MAX_PASSWORD_LENGTH = 128
# zxcvbn's score: 3 is "safely unguessable: moderate protection from offline slow-hash attacks".
MIN_STRENGTH = 3


def check_password_policy(password: str, email: str = "") -> None:
    """Raise StaffError when a password breaks OWASP ASVS 5.0 level 2 (V6.2) rules.

    Length 12 to 128, any characters, no composition rules; refused when it is among the
    30,000 most common passwords, contains the account's name, or is easy to guess.
    """
    from zxcvbn import zxcvbn

    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    if password.lower() in _common_passwords():
        raise StaffError("this password is among the most common ones; choose another")
    local_part = email.split("@")[0].lower()
    if len(local_part) >= 4 and local_part in password.lower():
        raise StaffError("the password must not contain the account's name")
    if zxcvbn(password[:100], user_inputs=[email, "amniotic"])["score"] < MIN_STRENGTH:
        raise StaffError("this password is too easy to guess; a few unrelated words work well")


@functools.cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def create_user(email: str, password: str, role: str, *, now: datetime) -> User:
    """Create an account; the e-mail is stored lower-cased."""
    email = email.strip().lower()
    if role not in ROLES:
        raise StaffError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if db.session.scalar(select(User.id).filter_by(email=email)):
        raise StaffError(f"an account for {email} already exists")
    check_password_policy(password, email)
    user = User(email=email, password_hash=hasher.hash(password), role=role, active=True,
                session_version=1, failed_logins=0, totp_last_step=0, created_at=now)
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(email: str, password: str, *, now: datetime) -> User | None:
    """The account when the password matches and it is not locked; counts failures."""
    user = db.session.scalar(select(User).filter_by(email=email.strip().lower()))
    if user is None:
        _verify(_DUMMY_HASH, password)
        return None
    if user.locked_until and user.locked_until > now:
        return None
    if not user.active or not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= LOCKOUT_AFTER:
            user.locked_until, user.failed_logins = now + LOCKOUT_FOR, 0
        db.session.commit()
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    db.session.commit()
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError):
        return False


def load_session_user(session_id: str) -> User | None:
    """Resolve the id kept in a session; a stale session version resolves to nobody."""
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version) or not user.active:
        return None
    return user


def end_sessions(user: User) -> None:
    """Invalidate every session of the account (logout, role change, disabling)."""
    user.session_version += 1


def set_role(user: User, role: str) -> None:
    if role not in ROLES:
        raise StaffError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    user.role = role
    end_sessions(user)
    db.session.commit()


def set_active(user: User, active: bool) -> None:
    user.active = active
    end_sessions(user)
    db.session.commit()


def create_token(user: User, name: str, *, now: datetime) -> str:
    """Create an API token and return it; it is shown once and stored only hashed."""
    token = "amn_" + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, name=name, token_sha256=_digest(token),
                            created_at=now))
    db.session.commit()
    return token


def user_for_token(token: str, *, now: datetime) -> User | None:
    row = db.session.scalar(select(ApiToken).filter_by(token_sha256=_digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    user = db.session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    row.last_used_at = now
    db.session.commit()
    return user


def find_user(email: str) -> User:
    user = db.session.scalar(select(User).filter_by(email=email.strip().lower()))
    if user is None:
        raise StaffError(f"no account for {email}")
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def needs_second_factor(user: User) -> bool:
    return user.role in SECOND_FACTOR_ROLES


def confirm_totp(user: User, secret: str, code: str, *, unix_time: float) -> bool:
    """Enroll an authenticator once the user proved it works with a first code."""
    step = totp.matching_step(secret, code, unix_time)
    if step is None:
        return False
    user.totp_secret, user.totp_last_step = secret, step
    db.session.commit()
    return True


def verify_totp(user: User, code: str, *, unix_time: float) -> bool:
    """Check a code; each code is accepted once."""
    if not user.totp_secret:
        return False
    step = totp.matching_step(user.totp_secret, code, unix_time, after_step=user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    db.session.commit()
    return True
