"""Short exclusive claims shared by the nodes of a cluster: Redis ``SET NX PX``.

What they guard can be retried safely when a claim is lost with Redis (an Idempotency-Key's
first request: its answer is in PostgreSQL, and a second request that finds none there
after the claim expired runs it again, as one node alone would after a crash). A claim has
a time to live, so a node that dies holding one does not hold it for ever, and a random
token, so that a holder only ever releases its own claim.
"""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

# Delete the key only if it still holds our token (it may have expired and been taken).
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Claims:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}claim:"

    async def claim(self, name: str, ttl_seconds: float) -> str | None:
        """A token if this caller now holds ``name``; None if another holds it."""
        token = secrets.token_hex(16)
        taken = await self._redis.set(self._prefix + name, token, nx=True,
                                      px=int(ttl_seconds * 1000))
        return token if taken else None

    async def release(self, name: str, token: str) -> None:
        await self._redis.eval(_RELEASE, 1, self._prefix + name, token)
