"""Delivers the outbox to webhooks: at least once, in ``sequence`` order per leg, signed
per Standard Webhooks, retried with exponential backoff for about an hour.

Ordering: for each (webhook, leg) only the oldest pending delivery is ever in flight, so a
retry holds back that leg's later events and nobody else's. A delivery that keeps failing is
parked as ``failed`` (``hookswitch webhooks log`` shows it, ``replay`` sends it again) and the
leg's next events go on. A webhook that answers 410 Gone is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from hookswitch.directory.models import WebhookRow
from hookswitch.events.models import DeliveryRow, EventRow
from hookswitch.events.outbox import Subscriptions
from hookswitch.store.db import as_utc

log = structlog.get_logger("hookswitch.events")

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
RETRIABLE = {408, 425, 429}


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
class _Job:
    delivery_id: int
    webhook_id: str
    leg_id: str
    uid: str
    payload: str
    created_at: datetime  # of the delivery (a replay starts the hour again)
    attempts: int
    url: str
    secret: str | None
    headers: dict[str, str]


class Sender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        subscriptions: Subscriptions,
        policy: RetryPolicy | None = None,
        concurrency: int = 16,
    ) -> None:
        self._sessions = sessions
        self._subscriptions = subscriptions
        self.policy = policy or RetryPolicy()
        self._wake = asyncio.Event()
        self._in_flight: set[tuple[str, str]] = set()
        # Deliveries settled while a dispatch query was running: that query may still see
        # them as pending, so this round leaves their leg alone (the next round sees them).
        self._settled_meanwhile: set[int] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="webhook-sender")

    def wake(self, _events: object = None) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._dispatch_due()
            except Exception:
                log.exception("webhooks.dispatch_failed")
            with contextlib.suppress(TimeoutError):
                # Retries fall due with time; new events and finished attempts wake us.
                await asyncio.wait_for(self._wake.wait(), 1.0)

    async def _dispatch_due(self) -> None:
        now = datetime.now(UTC)
        self._settled_meanwhile = set()
        async with self._sessions() as session:
            rows = (await session.execute(
                select(DeliveryRow, EventRow, WebhookRow)
                .join(EventRow, EventRow.id == DeliveryRow.event_id)
                .join(WebhookRow, WebhookRow.id == DeliveryRow.webhook_id)
                .where(DeliveryRow.status == "pending", WebhookRow.disabled_at.is_(None))
                .order_by(DeliveryRow.event_id)
                .limit(1000)
            )).all()
        heads: set[tuple[str, str]] = set()
        for delivery, event, webhook in rows:
            pair = (delivery.webhook_id, delivery.leg_id)
            if pair in heads:
                continue  # a later event of a leg waits for the earlier one
            heads.add(pair)
            if (
                pair in self._in_flight
                or delivery.id in self._settled_meanwhile
                or as_utc(delivery.next_attempt_at) > now
            ):
                continue
            job = _Job(delivery.id, delivery.webhook_id, delivery.leg_id, event.uid,
                       event.payload, as_utc(delivery.created_at), delivery.attempts,
                       webhook.url, webhook.secret, dict(webhook.headers or {}))
            self._in_flight.add(pair)
            task = asyncio.create_task(self._deliver(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: _Job) -> None:
        try:
            async with self._slots:
                status, error, retry_after = await self._attempt(job)
            await self._settle(job, status, error, retry_after)
        except Exception:
            log.exception("webhooks.delivery_crashed", delivery=job.delivery_id)
        finally:
            self._in_flight.discard((job.webhook_id, job.leg_id))
            self._wake.set()

    async def _attempt(self, job: _Job) -> tuple[int | None, str | None, float | None]:
        sent_at = datetime.now(UTC)
        headers = {
            **job.headers,
            "content-type": "application/json",
            "webhook-id": job.uid,
            "webhook-timestamp": str(int(sent_at.timestamp())),
        }
        if job.secret:
            headers["webhook-signature"] = Webhook(job.secret).sign(job.uid, sent_at,
                                                                     job.payload)
        try:
            response = await self._client.post(job.url, content=job.payload, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500], None
        retry_after = None
        if "retry-after" in response.headers:
            with contextlib.suppress(ValueError):
                retry_after = float(response.headers["retry-after"])
        return response.status_code, f"HTTP {response.status_code}", retry_after

    async def _settle(self, job: _Job, status: int | None, error: str | None,
                      retry_after: float | None) -> None:
        now = datetime.now(UTC)
        attempts = job.attempts + 1
        values: dict[str, object] = {"attempts": attempts}
        if status is not None and 200 <= status < 300:
            values.update(status="delivered", delivered_at=now, last_error=None)
        elif status == 410:
            await self._disable(job.webhook_id, now)
            values.update(status="failed", last_error="410 Gone: webhook disabled")
        elif status is None or status >= 500 or status in RETRIABLE:
            if (now - job.created_at).total_seconds() >= self.policy.give_up_after:
                values.update(status="failed", last_error=f"gave up: {error}")
            else:
                delay = self.policy.next_delay(attempts, retry_after)
                values.update(next_attempt_at=now + timedelta(seconds=delay), last_error=error)
        else:
            values.update(status="failed", last_error=f"refused: {error}")
        async with self._sessions.begin() as session:
            await session.execute(
                update(DeliveryRow).where(DeliveryRow.id == job.delivery_id).values(**values)
            )
        self._settled_meanwhile.add(job.delivery_id)
        if values.get("status") == "failed":
            log.warning("webhooks.delivery_failed", delivery=job.delivery_id, url=job.url,
                        error=values["last_error"])

    async def _disable(self, webhook_id: str, now: datetime) -> None:
        self._subscriptions.disable(webhook_id)
        async with self._sessions.begin() as session:
            await session.execute(
                update(WebhookRow).where(WebhookRow.id == webhook_id).values(disabled_at=now)
            )
            await session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.webhook_id == webhook_id, DeliveryRow.status == "pending")
                .values(status="failed", last_error="410 Gone: webhook disabled")
            )
        log.warning("webhooks.disabled", webhook=webhook_id)
