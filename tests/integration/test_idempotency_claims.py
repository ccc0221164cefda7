"""An Idempotency-Key in a cluster (api/idempotency.py with a cluster's claims): a stand-in
for Redis, so the other node's part is played by the test. The real thing, two nodes on
one Redis, is tests/cluster/test_api.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from hookswitch.api import idempotency
from hookswitch.api.errors import IdempotencyKeyInUse, SharedStateUnavailable
from hookswitch.api.idempotency import IdempotencyStore
from hookswitch.store.db import make_engine, migrate, session_factory
from hookswitch.store.writes import DirectWriter


class FakeClaims:
    """Redis as the nodes share it: a key held by "the other node" until it lets go."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.down = False

    async def claim(self, name: str, ttl_seconds: float) -> str | None:
        if self.down:
            raise RedisConnectionError("Redis is away")
        if name in self.held:
            return None
        self.held[name] = "token"
        return "token"

    async def release(self, name: str, token: str) -> None:
        if self.held.get(name) == token:
            del self.held[name]


@pytest.fixture
async def sessions(tmp_path: Path, database: str) -> AsyncIterator[Any]:
    engine = make_engine(database)
    await migrate(engine)
    yield session_factory(engine)
    await engine.dispose()


def store(sessions: Any, claims: FakeClaims) -> IdempotencyStore:
    return IdempotencyStore(sessions, DirectWriter(sessions), claims)  # type: ignore[arg-type]


async def test_a_key_another_node_holds_is_answered_with_its_stored_answer(
    sessions: Any,
) -> None:
    claims = FakeClaims()
    other, this = store(sessions, claims), store(sessions, claims)
    first_may_answer = asyncio.Event()
    runs: list[str] = []

    async def produce(name: str) -> tuple[int, dict[str, Any]]:
        runs.append(name)
        await first_may_answer.wait()  # the other node is still ringing the user
        return 202, {"call_leg_id": name}

    first = asyncio.create_task(other.once("u1", "k", "fp", lambda: produce("first")))
    while not claims.held:  # the other node has claimed the key
        await asyncio.sleep(0)
    second = asyncio.create_task(this.once("u1", "k", "fp", lambda: produce("second")))
    # Not done after a few of its polls (every 50 ms): it waits, it does not ring.
    await asyncio.sleep(0.2)
    assert not second.done()
    first_may_answer.set()
    assert await first == (202, {"call_leg_id": "first"}, False)
    assert await second == (202, {"call_leg_id": "first"}, True)
    assert runs == ["first"] and claims.held == {}


async def test_a_key_held_past_the_wait_is_a_409_with_retry_after(
    sessions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "CLAIM_WAIT", 0.2)
    claims = FakeClaims()
    claims.held[idempotency._claim_name("u1", "k")] = "another node's"  # it never answers
    this = store(sessions, claims)
    with pytest.raises(IdempotencyKeyInUse) as raised:
        await this.once("u1", "k", "fp", lambda: pytest.fail("must not run"))
    assert raised.value.headers["Retry-After"] == "1"


async def test_without_redis_a_key_is_refused_rather_than_rung_twice(sessions: Any) -> None:
    claims = FakeClaims()
    claims.down = True
    with pytest.raises(SharedStateUnavailable):
        await store(sessions, claims).once("u1", "k", "fp", lambda: pytest.fail("no"))
