"""``Idempotency-Key`` for click-to-dial: the same key from the same user within 24 h gets
the first answer again, and rings nobody again.

As the IETF Idempotency-Key draft (draft-ietf-httpapi-idempotency-key-header) says, a key is
bound to the request it was first used with: the stored answer keeps a fingerprint of that
request, and the same key with another request is refused (422) instead of answered with
the first request's answer. The caller checks authorisation before asking this store, so a
stored answer is never a way around a 403.

Answers are read here and written by the one writer (store/writes.py); a key's requests
wait for each other, and the first answer is committed before the next one looks. On one
node they wait on an asyncio lock. In a cluster the first also takes a claim on the key in
the shared Redis (``cluster/claims.py``): a request with the same key on another node waits
(bounded) until the first answer is committed and replays it, so switching nodes does not
ring twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.api.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    SharedStateUnavailable,
)
from hookswitch.cluster.claims import Claims
from hookswitch.store.idempotency import SaveAnswer, StoredAnswer, stored_answer
from hookswitch.store.writes import Writer

MAX_KEY_LENGTH = 255
# A claim outlives any first request (click-to-dial answers without waiting for SIP, then
# its answer is committed): it only frees the key of a node that died holding it.
CLAIM_TTL = 30.0
# How long a request waits for another node's first request with its key to be answered,
# then a 409 (Retry-After); and how often it looks meanwhile (the answer is in the
# database and the claim in Redis: nothing tells this node when either changes).
CLAIM_WAIT = 10.0
CLAIM_POLL = 0.05


def fingerprint(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys, no spaces). Given the validated
    command, user and payload, the same request in any of the accepted body forms, with its
    keys in any order and any ignored extra keys, has the same fingerprint."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], writer: Writer,
                 claims: Claims | None = None) -> None:
        self._sessions = sessions
        self._writer = writer
        self._claims = claims  # a cluster's; None on a single node
        # One lock per key, kept while any request holds or waits for it.
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    async def once(
        self,
        user_id: str,
        key: str,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> tuple[int, dict[str, Any], bool]:
        """(status, body, replayed): run ``produce`` only for the first use of the key;
        IdempotencyKeyReused when the key was first used with another request."""
        lock, users = self._locks.get((user_id, key), (asyncio.Lock(), 0))
        self._locks[(user_id, key)] = (lock, users + 1)
        try:
            async with lock:
                stored = await self._stored(user_id, key, request_fingerprint)
                if stored is not None:
                    return stored
                if self._claims is None:
                    return await self._first(user_id, key, request_fingerprint, produce)
                token = await self._claim(user_id, key, request_fingerprint)
                if isinstance(token, tuple):
                    return token  # another node's first request answered meanwhile
                try:
                    # Claimed: the holder before us may have committed just before it let go.
                    stored = await self._stored(user_id, key, request_fingerprint)
                    if stored is not None:
                        return stored
                    return await self._first(user_id, key, request_fingerprint, produce)
                finally:
                    await self._release(user_id, key, token)
        finally:
            lock, users = self._locks[(user_id, key)]
            if users == 1:
                del self._locks[(user_id, key)]  # nobody holds or waits for it
            else:
                self._locks[(user_id, key)] = (lock, users - 1)

    async def _stored(self, user_id: str, key: str, request_fingerprint: str,
                      ) -> tuple[int, dict[str, Any], bool] | None:
        """The key's stored answer, replayed; IdempotencyKeyReused for another request."""
        async with self._sessions() as session:
            stored = await stored_answer(session, user_id, key, datetime.now(UTC))
        if stored is None:
            return None
        return _replay(stored, request_fingerprint)

    async def _first(
        self, user_id: str, key: str, request_fingerprint: str,
        produce: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> tuple[int, dict[str, Any], bool]:
        status, body = await produce()
        if status < 500:
            await self._writer.call(SaveAnswer(user_id, key, request_fingerprint, status,
                                               json.dumps(body), datetime.now(UTC)))
        return status, body, False

    async def _claim(self, user_id: str, key: str, request_fingerprint: str,
                     ) -> str | tuple[int, dict[str, Any], bool]:
        """The claim's token once this node holds the key, or the answer stored by the
        node that held it; bounded by CLAIM_WAIT."""
        assert self._claims is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLAIM_WAIT
        while True:
            try:
                token = await self._claims.claim(_claim_name(user_id, key), CLAIM_TTL)
            except RedisError as exc:
                # Without the claim two nodes could both ring: refuse rather than guess.
                raise SharedStateUnavailable(
                    "this node cannot reach the cluster's Redis to reserve the "
                    "Idempotency-Key; retry (on any node)",
                    headers={"Retry-After": "1"}) from exc
            if token is not None:
                return token
            stored = await self._stored(user_id, key, request_fingerprint)
            if stored is not None:
                return stored
            if loop.time() >= deadline:
                raise IdempotencyKeyInUse(
                    "a request with this Idempotency-Key is still being carried out; "
                    "retry with the same key to get its answer",
                    headers={"Retry-After": "1"})
            await asyncio.sleep(CLAIM_POLL)  # a poll of Redis and the database, bounded

    async def _release(self, user_id: str, key: str, token: str) -> None:
        assert self._claims is not None
        # On failure it expires by itself; the answer is stored, which is what others wait for.
        with contextlib.suppress(RedisError):
            await self._claims.release(_claim_name(user_id, key), token)


def _claim_name(user_id: str, key: str) -> str:
    # Hashed: a key is any text up to 255 characters; a Redis key name need not carry it.
    return "idempotency:" + hashlib.sha256(f"{user_id}\n{key}".encode()).hexdigest()


def _replay(stored: StoredAnswer, request_fingerprint: str) -> tuple[int, dict[str, Any], bool]:
    # Keys stored before fingerprints existed (NULL) replay as they did.
    if stored.fingerprint not in (None, request_fingerprint):
        raise IdempotencyKeyReused(
            "this Idempotency-Key was first used with another request in "
            "the last 24 hours; use a new key for a new request"
        )
    return stored.status, json.loads(stored.body), True
