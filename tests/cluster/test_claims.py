"""cluster/claims.py on the machine's Redis: one holder at a time, a holder releases only
its own claim, and each cluster's claims are its own."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from harness.cluster import REDIS
from hookswitch.cluster.claims import Claims


async def test_one_holder_at_a_time_and_only_the_holder_releases() -> None:
    redis = Redis.from_url(REDIS, decode_responses=True)
    prefix = f"hookswitch:test-{uuid.uuid4().hex}:"
    here, there = Claims(redis, prefix), Claims(redis, prefix)
    other_prefix = f"hookswitch:test-{uuid.uuid4().hex}:"
    elsewhere = Claims(redis, other_prefix)
    try:
        token = await here.claim("key", 5)
        assert token is not None
        assert await there.claim("key", 5) is None
        assert await elsewhere.claim("key", 5) is not None  # another cluster's
        await there.release("key", "not-the-token")
        assert await there.claim("key", 5) is None
        assert 0 < await redis.pttl(f"{prefix}claim:key") <= 5000  # it expires by itself
        await here.release("key", token)
        assert await there.claim("key", 5) is not None
    finally:
        await redis.delete(f"{prefix}claim:key", f"{other_prefix}claim:key")
        await redis.aclose()
