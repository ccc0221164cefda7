"""The ``call-control`` rate-limit scope, per user, with the ``limits`` library.

"10 per second with a burst of 20" is a moving window of 20 requests per 2 seconds: a
client may send 20 at once, and 10 per second on average. Storage is in memory by default
and can be any ``limits`` storage URI (``redis://127.0.0.1:6379``) so several server
processes share one budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

SCOPE = "call-control"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until the window has room again

    @property
    def retry_after(self) -> int:
        """Seconds to wait before the next request (at least one), once refused."""
        return max(1, self.reset_after)

    def refusal(self) -> str:
        """What a refused request is told, by the API (a 429) and the portal alike."""
        return (f"this user's call-control budget of {self.limit} requests is spent; "
                f"retry in {self.retry_after} s")

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
        }


def documented_headers(*, required: bool) -> dict[str, Any]:
    """The RateLimit-* headers as OpenAPI documents them: on every answer of a rate-limited
    route once the token is known (``required`` where they always come), and Retry-After
    on 429."""
    meaning = {
        "RateLimit-Limit": "requests allowed in the window",
        "RateLimit-Remaining": "requests left in the window",
        "RateLimit-Reset": "seconds until the window has room again",
    }
    return {name: {"description": text, "required": required,
                   "schema": {"type": "integer", "minimum": 0}}
            for name, text in meaning.items()}


RETRY_AFTER_HEADER = {"Retry-After": {"description": "seconds to wait before retrying",
                                      "required": True,
                                      "schema": {"type": "integer", "minimum": 1}}}


def _storage(uri: str) -> Any:
    """The asyncio flavour of a ``limits`` storage ("async+memory://", "async+redis://");
    Redis through redis-py, the client the cluster uses already (not coredis)."""
    options = {"implementation": "redispy"} if uri.startswith(("redis", "rediss")) else {}
    return storage_from_string(f"async+{uri}", **options)


class RateLimiter:
    def __init__(self, per_second: int, burst: int, storage_uri: str = "memory://",
                 namespace: str = "") -> None:
        """``namespace`` keeps apart clusters that share one Redis (their users may have
        the same ids: the same provisioning file)."""
        self._namespace = namespace
        window = max(1, math.ceil(burst / per_second))
        self.item = RateLimitItemPerSecond(burst, window)
        # "async+memory://" / "async+redis://": the asyncio flavours of limits storages.
        self._limiter = MovingWindowRateLimiter(_storage(storage_uri))

    async def hit(self, key: str) -> Verdict:
        allowed = await self._limiter.hit(self.item, SCOPE, self._namespace, key)
        stats = await self._limiter.get_window_stats(self.item, SCOPE, self._namespace, key)
        reset_after = max(0, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, self.item.amount, stats.remaining, reset_after)


class LoginThrottle:
    """Failed portal logins per (login, source address): five in ten minutes, then wait.
    A window, not a lock: the user is never locked out for good, and guessing from one
    address cannot lock the user out from another. The same storage as the API's limit
    (``rate_limit_storage``), so several servers share it."""

    ITEM = RateLimitItemPerMinute(5, 10)

    def __init__(self, storage_uri: str = "memory://", namespace: str = "") -> None:
        self._namespace = namespace
        self._limiter = MovingWindowRateLimiter(_storage(storage_uri))

    async def wait_seconds(self, login: str, source: str) -> int:
        """0 if a try is allowed, else how long until it is."""
        key = (self._namespace, login.strip().lower()[:100], source)
        if await self._limiter.test(self.ITEM, "portal-login", *key):
            return 0
        stats = await self._limiter.get_window_stats(self.ITEM, "portal-login", *key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def failed(self, login: str, source: str) -> None:
        await self._limiter.hit(self.ITEM, "portal-login", self._namespace,
                                login.strip().lower()[:100], source)
