"""The live stream of a user's call events (Server-Sent Events), resumable from the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.events.models import EventRow
from hookswitch.events.outbox import OutboxEvent

KEEPALIVE = 15.0
QUEUE_LIMIT = 1000  # a client that reads nothing is cut off rather than grow memory


@dataclass(frozen=True, slots=True)
class StreamedEvent:
    id: int
    payload: str


class Broadcaster:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._queues: dict[str, set[asyncio.Queue[StreamedEvent | None]]] = {}

    def publish(self, events: Sequence[OutboxEvent]) -> None:
        for event in events:
            for queue in self._queues.get(event.user_id, ()):
                try:
                    queue.put_nowait(StreamedEvent(event.id, event.payload))
                except asyncio.QueueFull:
                    # Too slow a reader: drop what it has not read and end its stream; it
                    # resumes from its last id with Last-Event-ID and loses nothing.
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)

    async def stream(self, user_id: str, last_event_id: int | None) -> AsyncIterator[str]:
        """SSE text: replay after ``last_event_id`` from the outbox, then live events."""
        queue: asyncio.Queue[StreamedEvent | None] = asyncio.Queue(QUEUE_LIMIT)
        self._queues.setdefault(user_id, set()).add(queue)
        try:
            sent = last_event_id or 0
            yield "retry: 2000\n\n"
            if last_event_id is not None:
                async with self._sessions() as session:
                    rows = (await session.scalars(
                        select(EventRow)
                        .where(EventRow.user_id == user_id, EventRow.id > last_event_id)
                        .order_by(EventRow.id)
                    )).all()
                for row in rows:
                    sent = row.id
                    yield _frame(row.id, row.payload)
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if item is None:
                    return  # too slow a reader: it can resume with Last-Event-ID
                if item.id > sent:
                    sent = item.id
                    yield _frame(item.id, item.payload)
        finally:
            queues = self._queues.get(user_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._queues[user_id]


def _frame(event_id: int, payload: str) -> str:
    return f"id: {event_id}\nevent: call\ndata: {payload}\n\n"
