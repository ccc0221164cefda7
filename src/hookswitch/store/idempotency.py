"""Stored first answers of click-to-dial requests with an ``Idempotency-Key``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, String, delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from hookswitch.store.base import Base
from hookswitch.store.db import as_utc

KEEP = timedelta(hours=24)


class IdempotencyRow(Base):
    """The first answer to a click-to-dial with an Idempotency-Key, replayed for 24 h to the
    same request (``fingerprint``: SHA-256 of its canonical JSON; NULL for keys stored before
    migration 0005, which replay to any request as they did then)."""

    __tablename__ = "idempotency_keys"
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(String(4000))
    fingerprint: Mapped[str | None] = mapped_column(String(64))


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    body: str  # JSON
    fingerprint: str | None


async def stored_answer(session: AsyncSession, user_id: str, key: str,
                        now: datetime) -> StoredAnswer | None:
    """The answer stored for the key within the last 24 hours."""
    row = await session.get(IdempotencyRow, (user_id, key))
    if row is None or as_utc(row.created_at) <= now - KEEP:
        return None
    return StoredAnswer(row.status, row.body, row.fingerprint)


@dataclass(frozen=True, slots=True)
class SaveAnswer:
    """Keep a first answer (a write command for the one writer, store/writes.py); answers
    older than a day go at the same time."""

    user_id: str
    key: str
    fingerprint: str
    status: int
    body: str  # JSON
    at: datetime

    async def run(self, session: AsyncSession) -> object:
        await session.execute(delete(IdempotencyRow).where(
            IdempotencyRow.created_at < self.at - KEEP))
        await session.merge(IdempotencyRow(user_id=self.user_id, key=self.key,
                                           created_at=self.at, status=self.status,
                                           body=self.body, fingerprint=self.fingerprint))
        return None
