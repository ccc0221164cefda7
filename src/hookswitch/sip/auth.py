"""Digest authentication of phones (REGISTER and INVITE), on the SIP thread.

An unknown user and a wrong password get the same answer, so extensions cannot be
enumerated; a source that keeps failing is answered more and more slowly (tarpit).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sippy.SipHeader import SipHeader
from sippy.SipWWWAuthenticate import SipWWWAuthenticate

from hookswitch.directory.snapshot import Directory, Tenant, User

# Challenged with MD5 only by default: baresip/libre refuses a whole 401 that carries an
# algorithm it does not know, and sipp answers only the first challenge. SHA-256
# (RFC 8760) is offered too when `server.digest_algorithms` asks for it, and a SHA-256
# answer is always verified (both HA1 are stored).
DEFAULT_ALGORITHMS = ("MD5",)


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
    """Credentials were given and are wrong, or name nobody: 403, the same for both."""


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
    credentials = req.getHFBody("authorization")
    credentials.parse()
    user = tenant.users.get(uri.username or "")
    if (
        user is None
        or credentials.username != user.extension
        or credentials.realm != tenant.realm
    ):
        return Refused()
    sha256 = (credentials.algorithm or "MD5").startswith("SHA-256")
    ha1 = user.ha1_sha256 if sha256 else user.ha1_md5
    try:
        ok = credentials.verifyHA1(ha1.encode(), req.getMethod(), None)
    except Exception:
        ok = False
    if not ok:
        # A nonce older than sippy's validity window fails here too; a fresh challenge
        # lets an honest phone retry, so only a bad response counts as refused.
        if not credentials.ho.validate_challenge(credentials.nonce, (_mask(credentials),)):
            return Challenge(tenant.realm)
        return Refused()
    return Authenticated(tenant, user)


def _mask(credentials: Any) -> int:
    from sippy.SipAuthorization import _HASH_FUNC

    entry = _HASH_FUNC.get(credentials.algorithm)
    return entry[1] if entry else 0


@dataclass
class Tarpit:
    """Delays answers to sources that failed often: 0 s for the first few, then growing."""

    free_failures: int = 5
    window: float = 60.0
    max_delay: float = 8.0
    _failures: dict[str, list[float]] = field(default_factory=dict)

    def failed(self, source: str) -> None:
        now = time.monotonic()
        recent = [t for t in self._failures.get(source, []) if now - t < self.window]
        recent.append(now)
        self._failures[source] = recent[-50:]
        if len(self._failures) > 10_000:  # bounded memory under a scan
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, source: str) -> None:
        self._failures.pop(source, None)

    def delay(self, source: str) -> float:
        now = time.monotonic()
        recent = [t for t in self._failures.get(source, []) if now - t < self.window]
        excess = len(recent) - self.free_failures
        if excess <= 0:
            return 0.0
        return float(min(self.max_delay, 0.25 * 2 ** (excess - 1)))
