"""Digest authentication of phones (REGISTER and INVITE), on the SIP thread.

Nothing in an answer tells who exists. The order of the checks makes it so:

1. credentials that are not a readable Digest answer: refused (403);
2. a nonce that is not ours, or too old: challenged again (401), whoever the user is;
3. then the user: an unknown user, a wrong realm and a wrong response are all refused
   (403), and an unknown user's response is checked against a stand-in HA1, so that the
   work, and the time, is the same as for a known user.

A source that keeps failing for one user is answered more and more slowly (tarpit.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sippy.SipAuthorization import _HASH_FUNC
from sippy.SipHeader import SipHeader
from sippy.SipWWWAuthenticate import SipWWWAuthenticate

from hookswitch.calls.directory import Directory, Tenant, User

# Challenged with MD5 only by default: baresip/libre refuses a whole 401 that carries an
# algorithm it does not know, and sipp answers only the first challenge. SHA-256
# (RFC 8760) is offered too when `server.digest_algorithms` asks for it, and a SHA-256
# answer is always verified (both HA1 are stored).
DEFAULT_ALGORITHMS = ("MD5",)
_REQUIRED = ("username", "realm", "nonce", "uri", "response")
# Stand-ins for the HA1 of a user who does not exist: random, the length of a real one.
_NOBODY_MD5 = secrets.token_hex(16)
_NOBODY_SHA256 = secrets.token_hex(32)


@dataclass(frozen=True, slots=True)
class Authenticated:
    tenant: Tenant
    user: User


@dataclass(frozen=True, slots=True)
class Challenge:
    """Ask the phone for credentials (401 with one WWW-Authenticate per algorithm)."""

    realm: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Credentials were given and are wrong, unreadable or name nobody: 403 for all."""


Verdict = Authenticated | Challenge | Refused


def challenge_headers(realm: str, algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS) -> list[Any]:
    return [
        SipHeader(body=SipWWWAuthenticate(realm=realm, algorithm=algorithm))
        for algorithm in algorithms
    ]


def authenticate(directory: Directory, req: Any, aor_header: str) -> Verdict:
    """Check the request's digest credentials against the user named by ``aor_header``."""
    uri = req.getHFBody(aor_header).getUrl()
    tenant = directory.tenant_for_domain(uri.host or "")
    if tenant is None:
        return Refused()
    if req.countHFs("authorization") == 0:
        return Challenge(tenant.realm)
    credentials = _digest_credentials(req)
    if credentials is None:
        return Refused()
    if not _our_fresh_nonce(credentials):
        return Challenge(tenant.realm)
    user = tenant.users.get(uri.username or "")
    if user is None or credentials.username != user.extension or credentials.realm != tenant.realm:
        _verify(credentials, _NOBODY_SHA256 if _sha256(credentials) else _NOBODY_MD5, req)
        return Refused()
    ha1 = user.ha1_sha256 if _sha256(credentials) else user.ha1_md5
    if not _verify(credentials, ha1, req):
        return Refused()
    return Authenticated(tenant, user)


def _digest_credentials(req: Any) -> Any:
    """The first Authorization header as sippy's parsed ``SipAuthorization``, or None if it
    is not a Digest answer with every field a response is computed from.

    sippy's parser reads any scheme as Digest and raises on ``Digest`` alone or on a
    parameter without ``=``; the scheme and the fields are checked here instead.
    """
    header = req.getHF("authorization")
    scheme, _, parameters = str(header.body.body).strip().partition(" ")
    if scheme.lower() != "digest" or not parameters.strip():
        return None
    try:
        credentials = header.getBody()
    except Exception:
        return None
    if any(not getattr(credentials, name) for name in _REQUIRED):
        return None
    return credentials


def _our_fresh_nonce(credentials: Any) -> bool:
    """The nonce is one we issued, for this algorithm, less than 32 s ago (sippy's
    ``HashOracle``: an AES-encrypted timestamp, so no state is kept per challenge)."""
    entry = _HASH_FUNC.get(credentials.algorithm)
    if entry is None:
        return False
    return bool(credentials.ho.validate_challenge(credentials.nonce, (entry[1],)))


def _sha256(credentials: Any) -> bool:
    return str(credentials.algorithm or "MD5").startswith("SHA-256")


def _verify(credentials: Any, ha1: str, req: Any) -> bool:
    try:
        return bool(credentials.verifyHA1(ha1.encode(), req.getMethod(), None))
    except Exception:  # a field sippy cannot compute with (qop, nc...): a wrong answer
        return False
