"""``Idempotency-Key`` for click-to-dial: the same key from the same user within 24 h gets
the first answer again, and rings nobody again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.store.db import as_utc
from hookswitch.store.legs import IdempotencyRow

KEEP = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def once(
        self,
        user_id: str,
        key: str,
        produce: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> tuple[int, dict[str, Any], bool]:
        """(status, body, replayed): run ``produce`` only for the first use of the key."""
        lock = self._locks.setdefault((user_id, key), asyncio.Lock())
        async with lock:
            try:
                async with self._sessions() as session:
                    row = await session.get(IdempotencyRow, (user_id, key))
                    if row is not None and as_utc(row.created_at) > datetime.now(UTC) - KEEP:
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
                                           body=json.dumps(body))
                        )
                return status, body, False
            finally:
                if not lock.locked() or len(self._locks) > 10_000:
                    self._locks.pop((user_id, key), None)
