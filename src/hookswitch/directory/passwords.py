"""Web passwords and integration client secrets, hashed with argon2 (argon2-cffi).

A hash or a check costs about 20-50 ms of CPU by design, so callers on the event loop run
them in a thread (``asyncio.to_thread``): no request may hold the loop that long.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
# Checked when the user does not exist, so that an unknown user costs what a known one does.
_STAND_IN = _HASHER.hash("a password nobody has")


def hash_secret(secret: str) -> str:
    return _HASHER.hash(secret)


def secret_matches(stored: str | None, offered: str) -> bool:
    """Constant work whether or not anything is stored."""
    try:
        return _HASHER.verify(stored or _STAND_IN, offered) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
