"""The live stream of a user's call events (Server-Sent Events), resumable from the outbox.

- Each message's ``id:`` is the event's own unique id (``msg_…``, the webhook-id too). It
  says nothing about other users' traffic (the outbox's row number did: a user saw 20, then
  94) and is what a client sends back as ``Last-Event-ID`` to get what it missed.
- A stream lives only as long as the token that opened it: a revoked or expired token, or a
  removed user, ends it within ``TOKEN_CHECK_EVERY`` seconds; a stopping server ends them
  all first, so shutdown does not wait for them.
- At most ``max_per_user`` streams per user at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.calls.errors import HookswitchError
from hookswitch.events.models import EventRow
from hookswitch.events.outbox import EVENT_UID, OutboxEvent

log = structlog.get_logger("hookswitch.events")

KEEPALIVE = 15.0
QUEUE_LIMIT = 1000  # a client that reads nothing is cut off rather than grow memory
TOKEN_CHECK_EVERY = 2.0  # seconds between looks for revoked or expired tokens
DEFAULT_MAX_PER_USER = 10
REPLAY_PAGE = 500
SENT_REMEMBERED = REPLAY_PAGE  # a live event can repeat only the last replayed page
FROM_THE_START = "0"  # Last-Event-ID that replays the user's whole stream

TokensAlive = Callable[[set[str]], Awaitable[set[str]]]


class StreamError(HookswitchError):
    code = "stream-error"
    title = "Event stream error"


class BadCursor(StreamError):
    code = "bad-last-event-id"
    title = "Bad Last-Event-ID"


class TooManyStreams(StreamError):
    code = "too-many-streams"
    title = "Too many open event streams"
    headers = {"Retry-After": "5"}


@dataclass(frozen=True, slots=True)
class _Item:
    id: int  # the outbox row: orders and de-duplicates, never shown
    uid: str
    payload: str


@dataclass(eq=False)
class Listener:
    """One open stream."""

    user_id: str
    token_id: str | None
    queue: asyncio.Queue[_Item | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )

    def end(self) -> None:
        """End the stream after what it has queued is dropped (it can resume)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Broadcaster:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        max_per_user: int = DEFAULT_MAX_PER_USER,
        tokens_alive: TokensAlive | None = None,
    ) -> None:
        self._sessions = sessions
        self._max_per_user = max_per_user
        self._tokens_alive = tokens_alive
        self._listeners: dict[str, set[Listener]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False

    # --- producers -----------------------------------------------------------------------

    def publish(self, events: Sequence[OutboxEvent]) -> None:
        for event in events:
            if event.kind != "call":
                continue  # summaries and deactivation notices go to integrations only
            for listener in self._listeners.get(event.user_id, ()):
                try:
                    listener.queue.put_nowait(_Item(event.id, event.uid, event.payload))
                except asyncio.QueueFull:
                    # Too slow a reader: end its stream; it resumes from its last id with
                    # Last-Event-ID and loses nothing.
                    listener.end()

    def end_all(self) -> None:
        """End every open stream now; each client resumes with ``Last-Event-ID`` (this
        node missed notices from the others, and the outbox has what they were)."""
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.end()

    def close_all(self) -> None:
        """The server is stopping: end every stream now, and open no new one."""
        self._closed = True
        for listeners in self._listeners.values():
            for listener in listeners:
                listener.end()

    # --- streams ---------------------------------------------------------------------------

    async def resume_point(self, user_id: str, last_event_id: str) -> int:
        """The outbox position after which a stream resumes: after one of this user's
        events, or ``0`` for the start of the user's stream. ``BadCursor`` otherwise."""
        if last_event_id == FROM_THE_START:
            return 0
        if EVENT_UID.fullmatch(last_event_id) is None:
            raise BadCursor("Last-Event-ID must be the id of an event this stream sent "
                            "(msg_ and 32 hexadecimal digits), or 0 for the whole stream")
        async with self._sessions() as session:
            position = await session.scalar(
                select(EventRow.id).where(EventRow.uid == last_event_id,
                                          EventRow.user_id == user_id,
                                          EventRow.kind == "call")
            )
        if position is None:
            raise BadCursor(f"no event {last_event_id} in this user's stream")
        return int(position)

    def open(self, user_id: str, token_id: str | None) -> Listener:
        """Register a stream (before its first byte, so nothing published is missed)."""
        if self._closed:
            raise TooManyStreams("the server is stopping; reconnect in a moment")
        listeners = self._listeners.setdefault(user_id, set())
        if len(listeners) >= self._max_per_user:
            raise TooManyStreams(
                f"this user has {len(listeners)} open event streams, the most allowed; "
                "close one first"
            )
        listener = Listener(user_id, token_id)
        listeners.add(listener)
        self._watch()
        return listener

    def close(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.user_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.user_id]

    async def stream(self, listener: Listener, after: int | None) -> AsyncIterator[str]:
        """SSE text: replay what follows ``after`` from the outbox, then live events.

        A live event is sent unless this stream sent it already (an event committed while
        the replay read its last page comes both ways). Not "unless its id is lower than
        the last one sent": in a cluster, two nodes commit a user's events concurrently,
        and a lower id can be committed, and published, after a higher one."""
        position = after or 0
        sent: deque[int] = deque(maxlen=SENT_REMEMBERED)
        yield "retry: 2000\n\n"
        if after is not None:
            while rows := await self._replay_page(listener.user_id, position):
                for row_id, uid, payload in rows:
                    position = row_id
                    sent.append(row_id)
                    yield _frame(uid, payload)
        while True:
            try:
                item = await asyncio.wait_for(listener.queue.get(), KEEPALIVE)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is None:
                return  # ended (revoked token, slow reader, shutdown): it may resume
            if item.id not in sent:
                sent.append(item.id)
                yield _frame(item.uid, item.payload)

    async def _replay_page(self, user_id: str, after: int) -> Sequence[tuple[int, str, str]]:
        """The next page of a replay: a long history is read in pages, never all at once."""
        async with self._sessions() as session:
            rows = (await session.execute(
                select(EventRow.id, EventRow.uid, EventRow.payload)
                .where(EventRow.user_id == user_id, EventRow.id > after,
                       EventRow.kind == "call")
                .order_by(EventRow.id)
                .limit(REPLAY_PAGE)
            )).all()
        return [(row_id, uid, payload) for row_id, uid, payload in rows]

    # --- token watch -----------------------------------------------------------------------

    def _watch(self) -> None:
        if self._tokens_alive is not None and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.create_task(self._watch_tokens(), name="stream-tokens")

    async def _watch_tokens(self) -> None:
        while self._listeners:
            await asyncio.sleep(TOKEN_CHECK_EVERY)  # a polling cadence, not a sync point
            try:
                await self.check_tokens()
            except Exception:  # the database may be briefly away; look again later
                log.exception("events.token_check_failed")

    async def check_tokens(self) -> None:
        """End the streams whose token is no longer valid (revoked, expired, user gone)."""
        if self._tokens_alive is None:
            return
        opened = {listener.token_id for listeners in self._listeners.values()
                  for listener in listeners if listener.token_id is not None}
        if not opened:
            return
        alive = await self._tokens_alive(opened)
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                if listener.token_id is not None and listener.token_id not in alive:
                    log.info("events.stream_closed_token_invalid", user=listener.user_id)
                    listener.end()


def _frame(uid: str, payload: str) -> str:
    return f"id: {uid}\nevent: call\ndata: {payload}\n\n"
