"""An Idempotency-Key in a cluster (api/idempotency.py with a cluster's claims on the
machine's Redis): two stores play two nodes, so the other node's part is timed by the test.
Two real nodes on one Redis: tests/cluster/test_api.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from harness.cluster import REDIS
from hookswitch.api import idempotency
from hookswitch.api.errors import IdempotencyKeyInUse, SharedStateUnavailable
from hookswitch.api.idempotency import IdempotencyStore
from hookswitch.cluster.claims import Claims
from hookswitch.store.db import make_engine, migrate, session_factory
from hookswitch.store.writes import DirectWriter

PREFIX = f"hookswitch:test-claims-{uuid.uuid4().hex}:"
KEY = f"{PREFIX}claim:{idempotency._claim_name('u1', 'k')}"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS, decode_responses=True)
    yield client
    await client.delete(KEY)
    await client.aclose()


@pytest.fixture
async def sessions(tmp_path: Path, database: str) -> AsyncIterator[Any]:
    engine = make_engine(database)
    await migrate(engine)
    yield session_factory(engine)
    await engine.dispose()


def store(sessions: Any, redis: Redis) -> IdempotencyStore:
    return IdempotencyStore(sessions, DirectWriter(sessions), Claims(redis, PREFIX))


async def test_a_key_another_node_holds_is_answered_with_its_stored_answer(
    sessions: Any, redis: Redis
) -> None:
    other, this = store(sessions, redis), store(sessions, redis)
    first_may_answer = asyncio.Event()
    runs: list[str] = []

    async def produce(name: str) -> tuple[int, dict[str, Any]]:
        runs.append(name)
        await first_may_answer.wait()  # the other node is still ringing the user
        return 202, {"call_leg_id": name}

    first = asyncio.create_task(other.once("u1", "k", "fp", lambda: produce("first")))
    while not await redis.exists(KEY):  # the other node has claimed the key
        await asyncio.sleep(0.005)  # the polling period of a condition
    second = asyncio.create_task(this.once("u1", "k", "fp", lambda: produce("second")))
    # Not done after a few of its polls (every 50 ms): it waits, it does not ring.
    await asyncio.sleep(0.2)
    assert not second.done()
    first_may_answer.set()
    assert await first == (202, {"call_leg_id": "first"}, False)
    assert await second == (202, {"call_leg_id": "first"}, True)
    assert runs == ["first"] and not await redis.exists(KEY)  # released


async def test_a_key_held_past_the_wait_is_a_409_with_retry_after(
    sessions: Any, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "CLAIM_WAIT", 0.2)
    await redis.set(KEY, "another node's", px=30_000)  # it never answers
    this = store(sessions, redis)
    with pytest.raises(IdempotencyKeyInUse) as raised:
        await this.once("u1", "k", "fp", lambda: pytest.fail("must not run"))
    assert raised.value.headers["Retry-After"] == "1"


async def test_without_redis_a_key_is_refused_rather_than_rung_twice(sessions: Any) -> None:
    # Nothing listens on port 1: Redis is away, as a node sees it then.
    away = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    try:
        with pytest.raises(SharedStateUnavailable):
            await store(sessions, away).once("u1", "k", "fp", lambda: pytest.fail("no"))
    finally:
        await away.aclose()
