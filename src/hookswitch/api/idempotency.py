"""``Idempotency-Key`` for click-to-dial: the same key from the same user within 24 h gets
the first answer again, and rings nobody again.

As the IETF Idempotency-Key draft (draft-ietf-httpapi-idempotency-key-header) says, a key is
bound to the request it was first used with: the stored answer keeps a fingerprint of that
request, and the same key with another request is refused (422) instead of answered with
the first request's answer. The caller checks authorisation before asking this store, so a
stored answer is never a way around a 403.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.store.db import as_utc
from hookswitch.store.legs import IdempotencyRow

KEEP = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(Exception):
    """The key was first used with another request; the message says so."""

    code = "idempotency-key-reused"


def fingerprint(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON (sorted keys, no spaces). Given the validated
    command, user and payload, the same request in any of the accepted body forms, with its
    keys in any order and any ignored extra keys, has the same fingerprint."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def once(
        self,
        user_id: str,
        key: str,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> tuple[int, dict[str, Any], bool]:
        """(status, body, replayed): run ``produce`` only for the first use of the key;
        IdempotencyKeyReused when the key was first used with another request."""
        lock = self._locks.setdefault((user_id, key), asyncio.Lock())
        async with lock:
            try:
                async with self._sessions() as session:
                    row = await session.get(IdempotencyRow, (user_id, key))
                    if row is not None and as_utc(row.created_at) > datetime.now(UTC) - KEEP:
                        # Keys stored before fingerprints existed (NULL) replay as they did.
                        if row.fingerprint not in (None, request_fingerprint):
                            raise IdempotencyKeyReused(
                                "this Idempotency-Key was first used with another request in "
                                "the last 24 hours; use a new key for a new request"
                            )
                        return row.status, json.loads(row.body), True
                status, body = await produce()
                if status < 500:
                    async with self._sessions.begin() as session:
                        await session.execute(
                            delete(IdempotencyRow).where(
                                IdempotencyRow.created_at < datetime.now(UTC) - KEEP
                            )
                        )
                        await session.merge(
                            IdempotencyRow(user_id=user_id, key=key,
                                           created_at=datetime.now(UTC), status=status,
                                           body=json.dumps(body),
                                           fingerprint=request_fingerprint)
                        )
                return status, body, False
            finally:
                if not lock.locked() or len(self._locks) > 10_000:
                    self._locks.pop((user_id, key), None)
