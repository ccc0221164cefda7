"""Delivers the outbox to webhooks: at least once, in ``sequence`` order per leg, signed
per Standard Webhooks, retried with exponential backoff for about an hour.

New events come straight from the recorder once their transaction has committed, so the
hot path never reads the database; the outbox is read at start-up (what a crash or a stop
left pending) and every few seconds for deliveries queued again by ``webhooks replay``.

Ordering: each (webhook, leg) has a FIFO and one worker, so a retry holds back that leg's
later events and nobody else's. A delivery that keeps failing is parked as ``failed`` and
the leg's next events go on. A webhook that answers 410 Gone is disabled. Outcomes are
written in small batches; a crash between a delivery and its write means one duplicate
after restart, which receivers drop by ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from hookswitch.events.models import DeliveryRow, EventRow, WebhookRow
from hookswitch.events.outbox import UNCLAIMED, OutboxDelivery, OutboxEvent, Subscriptions
from hookswitch.events.stats import DELIVERIES, DELIVERY_SECONDS, OUTBOX_DEPTH
from hookswitch.store.db import as_utc
from hookswitch.store.lock import DEFAULT_NODE

log = structlog.get_logger("hookswitch.events")

# The documented timeouts: 5 s to connect, 10 s for each read of the answer.
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=10.0)
USER_AGENT = "hookswitch-webhooks/1"
MAX_ANSWER = 64 * 1024  # bytes of a receiver's answer read (and ignored); the rest is dropped
RETRIABLE = {408, 425, 429}
RESCAN_EVERY = 3.0  # seconds between looks for deliveries queued again from the CLI
FLUSH_EVERY = 0.05  # seconds between writes of delivery outcomes


@dataclass(frozen=True)
class RetryPolicy:
    first_interval: float = 1.0  # seconds before the first retry, doubling after each
    max_interval: float = 600.0
    give_up_after: float = 3600.0  # then the delivery is parked as failed

    def next_delay(self, attempts: int, retry_after: float | None) -> float:
        delay = min(self.max_interval, self.first_interval * 2 ** max(0, attempts - 1))
        if retry_after is not None:
            delay = min(self.max_interval, max(delay, retry_after))
        return float(delay * random.uniform(0.9, 1.1))  # spread retries of many events


@dataclass(frozen=True)
class Target:
    url: str
    secret: str | None
    headers: dict[str, str]


@dataclass
class Job:
    delivery_id: int
    webhook_id: str
    leg_id: str
    uid: str
    payload: str
    created_at: datetime  # of the delivery (a replay starts the hour again)
    attempts: int = 0
    not_before: datetime | None = None


@dataclass
class _Outcomes:
    delivered: list[int] = field(default_factory=list)
    other: list[tuple[int, dict[str, object]]] = field(default_factory=list)
    done: list[int] = field(default_factory=list)  # delivered or parked: leave memory

    def __bool__(self) -> bool:
        return bool(self.delivered or self.other)


class Sender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        subscriptions: Subscriptions,
        write: Callable[[Callable[[AsyncSession], Awaitable[object]]], Awaitable[object]],
        policy: RetryPolicy | None = None,
        concurrency: int = 16,
        node_id: str = DEFAULT_NODE,
    ) -> None:
        """``write`` applies a change in a committed transaction: the one writer's
        (``Recorder.write``), so that SQLite never sees two writers at once. ``sessions``
        only reads."""
        self._sessions = sessions
        self._node_id = node_id  # it sends this node's deliveries only (a cluster's nodes)
        self._write = write
        self._subscriptions = subscriptions
        self.policy = policy or RetryPolicy()
        self._slots = asyncio.Semaphore(concurrency)
        self._targets: dict[str, Target] = {}
        self._queues: dict[tuple[str, str], deque[Job]] = {}
        # Delivery ids held in memory. A finished one stays known until a rescan that
        # started after its outcome was written, so no rescan can queue it again.
        self._known: set[int] = set()
        self._written_done: set[int] = set()
        self._workers: set[asyncio.Task[None]] = set()
        self._outcomes = _Outcomes()
        self._background: list[asyncio.Task[None]] = []
        self._client: aiohttp.ClientSession | None = None
        OUTBOX_DEPTH.set_function(lambda: sum(len(queue) for queue in self._queues.values()))

    async def start(self) -> None:
        # aiohttp, not httpx: at the benchmark's knee httpx cost 1.9 ms of CPU per POST
        # against aiohttp's 0.2 ms, and three POSTs go out per answered call.
        self._client = aiohttp.ClientSession(
            timeout=TIMEOUT, cookie_jar=aiohttp.DummyCookieJar(),
            headers={"user-agent": USER_AGENT})
        await self._load_targets()
        await self.load_pending()
        self._background = [asyncio.create_task(self._rescan(), name="webhook-rescan"),
                            asyncio.create_task(self._flush_loop(), name="webhook-outcomes")]

    def enqueue(self, events: Sequence[OutboxEvent],
                deliveries: Sequence[OutboxDelivery]) -> None:
        """Committed by the recorder just now: send them (they are in event order)."""
        by_event = {event.id: event for event in events}
        for delivery in deliveries:
            event = by_event[delivery.event_id]
            self._add(Job(delivery.id, delivery.webhook_id, delivery.leg_id, event.uid,
                          event.payload, delivery.created_at))

    async def stop(self) -> None:
        for task in [*self._background, *self._workers]:
            task.cancel()
        await asyncio.gather(*self._background, *self._workers, return_exceptions=True)
        await self._write_outcomes()
        if self._client is not None:
            await self._client.close()

    # --- queues and workers ------------------------------------------------------------

    def _add(self, job: Job) -> None:
        if job.delivery_id in self._known or job.webhook_id not in self._targets:
            return
        self._known.add(job.delivery_id)
        pair = (job.webhook_id, job.leg_id)
        queue = self._queues.get(pair)
        if queue is None:
            queue = self._queues[pair] = deque()
            worker = asyncio.create_task(self._work(pair, queue))
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        queue.append(job)

    async def _work(self, pair: tuple[str, str], queue: deque[Job]) -> None:
        """Deliver one leg's events to one webhook, strictly one after the other."""
        try:
            while queue:
                job = queue[0]
                if job.not_before is not None:
                    wait = (job.not_before - datetime.now(UTC)).total_seconds()
                    if wait > 0:
                        await asyncio.sleep(wait)  # the backoff itself, not a sync point
                async with self._slots:
                    status, error, retry_after = await self._attempt(job)
                if self._settle(job, status, error, retry_after):
                    queue.popleft()
                if job.webhook_id not in self._targets:  # disabled by a 410
                    queue.clear()  # their rows are parked by _write_disabled
        finally:
            if self._queues.get(pair) is queue:
                del self._queues[pair]

    async def _attempt(self, job: Job) -> tuple[int | None, str | None, float | None]:
        target = self._targets[job.webhook_id]
        sent_at = datetime.now(UTC)
        headers = {
            **target.headers,
            "content-type": "application/json",
            "webhook-id": job.uid,
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if target.secret:
            headers["webhook-signature"] = Webhook(target.secret).sign(job.uid, sent_at,
                                                                        job.payload)
        assert self._client is not None, "start() first"
        try:
            async with self._client.post(target.url, data=job.payload.encode(),
                                         headers=headers, allow_redirects=False) as response:
                # Read a bounded answer so the connection can carry the next POST.
                await response.content.read(MAX_ANSWER)
                status, retry_header = response.status, response.headers.get("retry-after")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500], None
        retry_after = None
        if retry_header is not None:
            with contextlib.suppress(ValueError):
                retry_after = float(retry_header)
        return status, f"HTTP {status}", retry_after

    def _settle(self, job: Job, status: int | None, error: str | None,
                retry_after: float | None) -> bool:
        """Record the outcome; True when the job is done (delivered or parked)."""
        now = datetime.now(UTC)
        job.attempts += 1
        if status is not None and 200 <= status < 300:
            self._outcomes.delivered.append(job.delivery_id)
            self._outcomes.done.append(job.delivery_id)
            DELIVERIES.labels("delivered").inc()
            DELIVERY_SECONDS.observe(max(0.0, (now - job.created_at).total_seconds()))
            return True
        values: dict[str, object] = {"attempts": job.attempts, "last_error": error}
        done = True
        if status == 410:
            self._disable(job.webhook_id)
            values.update(status="failed", last_error="410 Gone: webhook disabled")
        elif status is None or status >= 500 or status in RETRIABLE:
            if (now - job.created_at).total_seconds() >= self.policy.give_up_after:
                values.update(status="failed", last_error=f"gave up: {error}")
            else:
                job.not_before = now + timedelta(
                    seconds=self.policy.next_delay(job.attempts, retry_after))
                values.update(next_attempt_at=job.not_before)
                done = False
        else:
            values.update(status="failed", last_error=f"refused: {error}")
        self._outcomes.other.append((job.delivery_id, values))
        DELIVERIES.labels("failed" if done else "retry").inc()
        if done:
            self._outcomes.done.append(job.delivery_id)
        if values.get("status") == "failed":
            log.warning("webhooks.delivery_failed", delivery=job.delivery_id,
                        error=values["last_error"])
        return done

    def _disable(self, webhook_id: str) -> None:
        self._subscriptions.disable(webhook_id)
        self._targets.pop(webhook_id, None)
        task = asyncio.create_task(self._write_disabled(webhook_id))
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)
        log.warning("webhooks.disabled", webhook=webhook_id)

    async def _write_disabled(self, webhook_id: str) -> None:
        await self._write_outcomes()

        async def statements(session: AsyncSession) -> None:
            await session.execute(update(WebhookRow).where(WebhookRow.id == webhook_id)
                                  .values(disabled_at=datetime.now(UTC)))
            await session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.webhook_id == webhook_id, DeliveryRow.status == "pending")
                .values(status="failed", last_error="410 Gone: webhook disabled"))

        await self._write(statements)

    # --- the database side -------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)  # a write cadence, not a synchronisation
            try:
                await self._write_outcomes()
            except Exception:
                log.exception("webhooks.outcomes_write_failed")

    async def _write_outcomes(self) -> None:
        outcomes, self._outcomes = self._outcomes, _Outcomes()
        if not outcomes:
            return

        async def statements(session: AsyncSession) -> None:
            if outcomes.delivered:
                await session.execute(
                    update(DeliveryRow).where(DeliveryRow.id.in_(outcomes.delivered))
                    .values(status="delivered", delivered_at=datetime.now(UTC),
                            last_error=None))
            for delivery_id, values in outcomes.other:
                await session.execute(
                    update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(**values))

        await self._write(statements)
        self._written_done.update(outcomes.done)

    async def _rescan(self) -> None:
        while True:
            await asyncio.sleep(RESCAN_EVERY)  # polling for CLI replays, not a sync point
            try:
                await self._load_targets()
                await self.load_pending()
            except Exception:
                log.exception("webhooks.rescan_failed")

    async def _load_targets(self) -> None:
        """Where each webhook goes, and who subscribes to what: at start, and again at
        every rescan, for what another process changed (an integration made or ended with
        the command line)."""
        async with self._sessions() as session:
            rows = (await session.scalars(
                select(WebhookRow).where(WebhookRow.disabled_at.is_(None)))).all()
            self._subscriptions.replace_with(await Subscriptions.load(session))
        self._targets = {row.id: Target(row.url, row.secret, dict(row.headers or {}))
                         for row in rows}

    async def load_pending(self) -> None:
        """Queue what the outbox holds as pending for this node and memory does not know
        yet (at start, at every rescan, and at once after a takeover gave it a dead node's);
        first claim the deliveries no node has (written by the command line)."""

        async def claim(session: AsyncSession) -> None:
            await session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.node_id == UNCLAIMED, DeliveryRow.status == "pending")
                .values(node_id=self._node_id))

        await self._write(claim)
        forget, self._written_done = self._written_done, set()
        async with self._sessions() as session:
            rows = (await session.execute(
                select(DeliveryRow, EventRow.uid, EventRow.payload)
                .join(EventRow, EventRow.id == DeliveryRow.event_id)
                .where(DeliveryRow.status == "pending", DeliveryRow.node_id == self._node_id)
                .order_by(DeliveryRow.event_id)
            )).all()
        for delivery, uid, payload in rows:
            if delivery.id in self._known:
                continue
            self._add(Job(delivery.id, delivery.webhook_id, delivery.leg_id, uid, payload,
                          as_utc(delivery.created_at), delivery.attempts,
                          as_utc(delivery.next_attempt_at)))
        # Written before this query began, so it no longer showed them as pending.
        self._known -= forget
