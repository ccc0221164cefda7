"""Secrets as stored: digest HA1 for SIP, SHA-256 for API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def digest_ha1(algorithm: str, user: str, realm: str, password: str) -> str:
    """HA1 of RFC 2617/7616 for the non-session algorithms (MD5, SHA-256)."""
    hasher = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5
    return hasher(f"{user}:{realm}:{password}".encode()).hexdigest()


def token_digest(token: str) -> str:
    # Tokens are long random strings, so a fast hash is enough (no password stretching).
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "hs_" + secrets.token_urlsafe(32)


def same_digest(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())
