"""Tokens of an activation, and what a presented refresh token means (RFC 6749 section 6,
with rotation and reuse detection as RFC 9700 section 4.14.2 recommends).

Every refresh returns a new access token and a new refresh token; the used refresh token
is dead. A client that lost the answer may present the *immediately previous* refresh
token again within the grace window and gets the same pair back: that pair is kept,
encrypted with a key derived from that previous token, so only its holder can read it and
the database never holds a usable token. Any other dead refresh token is theft: the whole
family is revoked and the activation ends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography.fernet import Fernet, InvalidToken

SCOPE = "call-control call-events"


class Decision(StrEnum):
    ROTATE = "rotate"  # a live refresh token: issue the next pair
    REPLAY = "replay"  # the previous one, again, within the grace window: the same pair
    REUSE = "reuse"  # a dead one: revoke the family, end the activation
    INVALID = "invalid"  # unknown, expired, revoked, or not this client's


@dataclass(frozen=True, slots=True)
class RefreshState:
    """What the store knows of a presented refresh token."""

    expires_at: datetime
    used_at: datetime | None
    revoked: bool
    successor_unused: bool  # the token that replaced it has not been used (nor revoked)


def decide(state: RefreshState | None, now: datetime, grace: timedelta) -> Decision:
    if state is None or state.revoked:
        return Decision.INVALID
    if state.used_at is None:
        return Decision.ROTATE if state.expires_at > now else Decision.INVALID
    if state.successor_unused and now - state.used_at <= grace:
        return Decision.REPLAY
    return Decision.REUSE


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def answer(self) -> dict[str, object]:
        """The token endpoint's answer (RFC 6749 section 5.1)."""
        return {"access_token": self.access_token, "token_type": "Bearer",
                "expires_in": self.expires_in, "refresh_token": self.refresh_token,
                "scope": SCOPE}


def new_pair(access_ttl: int) -> TokenPair:
    return TokenPair("hsa_" + secrets.token_urlsafe(32), "hsr_" + secrets.token_urlsafe(48),
                     access_ttl)


def _key(refresh_token: str) -> Fernet:
    digest = hashlib.sha256(b"hookswitch refresh replay\0" + refresh_token.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(pair: TokenPair, previous_refresh_token: str) -> str:
    """The pair, readable only with the refresh token it replaced."""
    data = json.dumps({"a": pair.access_token, "r": pair.refresh_token, "e": pair.expires_in})
    return _key(previous_refresh_token).encrypt(data.encode()).decode()


def unseal(sealed: str, previous_refresh_token: str) -> TokenPair | None:
    try:
        data = json.loads(_key(previous_refresh_token).decrypt(sealed.encode()))
    except (InvalidToken, ValueError):
        return None
    return TokenPair(data["a"], data["r"], int(data["e"]))
