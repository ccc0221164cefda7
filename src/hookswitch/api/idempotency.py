"""``Idempotency-Key`` for click-to-dial: the same key from the same user within 24 h gets
the first answer again, and rings nobody again.

As the IETF Idempotency-Key draft (draft-ietf-httpapi-idempotency-key-header) says, a key is
bound to the request it was first used with: the stored answer keeps a fingerprint of that
request, and the same key with another request is refused (422) instead of answered with
the first request's answer. The caller checks authorisation before asking this store, so a
stored answer is never a way around a 403.

Answers are read here and written by the one writer (store/writes.py); a key's requests
wait for each other, and the first answer is committed before the next one looks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.api.errors import IdempotencyKeyReused
from hookswitch.store.idempotency import SaveAnswer, stored_answer
from hookswitch.store.writes import Writer

MAX_KEY_LENGTH = 255


def fingerprint(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys, no spaces). Given the validated
    command, user and payload, the same request in any of the accepted body forms, with its
    keys in any order and any ignored extra keys, has the same fingerprint."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], writer: Writer) -> None:
        self._sessions = sessions
        self._writer = writer
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
                async with self._sessions() as session:
                    stored = await stored_answer(session, user_id, key, datetime.now(UTC))
                if stored is not None:
                    # Keys stored before fingerprints existed (NULL) replay as they did.
                    if stored.fingerprint not in (None, request_fingerprint):
                        raise IdempotencyKeyReused(
                            "this Idempotency-Key was first used with another request in "
                            "the last 24 hours; use a new key for a new request"
                        )
                    return stored.status, json.loads(stored.body), True
                status, body = await produce()
                if status < 500:
                    await self._writer.call(SaveAnswer(user_id, key, request_fingerprint,
                                                       status, json.dumps(body),
                                                       datetime.now(UTC)))
                return status, body, False
        finally:
            lock, users = self._locks[(user_id, key)]
            if users == 1:
                del self._locks[(user_id, key)]  # nobody holds or waits for it
            else:
                self._locks[(user_id, key)] = (lock, users - 1)
