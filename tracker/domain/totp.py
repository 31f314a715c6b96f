"""Time-based one-time passwords (RFC 6238, SHA-1, 6 digits, 30 s), as authenticator apps use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote

STEP_SECONDS = 30
DIGITS = 6
# Accept the previous and next step too: phone clocks drift.
WINDOW = 1


def new_secret() -> str:
    """A random 160-bit secret, base32 as authenticator apps expect."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def code_at(secret: str, step: int) -> str:
    """The code of one time step (RFC 4226 HOTP over the step counter)."""
    key = base64.b32decode(secret)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def step_of(unix_time: float) -> int:
    return int(unix_time // STEP_SECONDS)


def matching_step(secret: str, code: str, unix_time: float, after_step: int = -1) -> int | None:
    """The step whose code matches, if any and later than `after_step` (no replay)."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = step_of(unix_time)
    for step in range(now - WINDOW, now + WINDOW + 1):
        if step > after_step and hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str = "Amniotic tracker") -> str:
    """The otpauth:// URI an authenticator app imports (usually from a QR code)."""
    return (f"otpauth://totp/{quote(issuer)}:{quote(account)}?secret={secret}"
            f"&issuer={quote(issuer)}&digits={DIGITS}&period={STEP_SECONDS}")
