"""Notices between the nodes of a cluster: Redis publish/subscribe on one channel.

What goes over it can be lost (Redis pub/sub delivers at most once, to whoever listens
now): only what the database also holds, as a hint to look sooner. A node that was cut off
from the bus calls ``on_gap`` when it is back, to catch up from the database (its live
event streams end, and resume from ``Last-Event-ID``; it loads the bindings again).

Messages are JSON: ``{"kind": ..., "node": <sender>, "data": ...}``; a node ignores its
own. Publishing is in order: one task sends what ``publish`` queued, FIFO.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("hookswitch.cluster")

RECONNECT_AFTER = 0.5  # seconds before subscribing again after Redis went away
QUEUE_LIMIT = 10_000  # notices waiting to be published; beyond, they are dropped (hints)

Handler = Callable[[Any], None]


class Bus:
    def __init__(self, redis: Redis, prefix: str, node_id: str,
                 handlers: dict[str, Handler], on_gap: Callable[[], None]) -> None:
        self._redis = redis
        self._channel = f"{prefix}bus"
        self._node_id = node_id
        self._handlers = handlers
        self._on_gap = on_gap
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="cluster-bus-listen"),
                       asyncio.create_task(self._publish(), name="cluster-bus-publish")]
        # Bounded: a node whose Redis is away serves anyway, and catches up when it is back.
        try:
            await asyncio.wait_for(self.subscribed.wait(), 5.0)
        except TimeoutError:
            log.warning("cluster.bus_not_subscribed")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def publish(self, kind: str, data: Any) -> None:
        message = json.dumps({"kind": kind, "node": self._node_id, "data": data},
                             separators=(",", ":"))
        try:
            self._outgoing.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("cluster.bus_dropped", kind=kind)

    async def _publish(self) -> None:
        while True:
            message = await self._outgoing.get()
            try:
                await self._redis.publish(self._channel, message)
            except RedisError as exc:
                log.warning("cluster.publish_failed", error=str(exc))

    async def _listen(self) -> None:
        first = True
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self.subscribed.set()
                if not first:
                    self._on_gap()
                first = False
                async for message in pubsub.listen():
                    self._dispatch(message)
            except RedisError as exc:
                self.subscribed.clear()
                log.warning("cluster.bus_lost", error=str(exc))
            finally:
                await pubsub.aclose()
            await asyncio.sleep(RECONNECT_AFTER)  # a back-off, not a synchronisation

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        try:
            notice = json.loads(message["data"])
            if notice["node"] == self._node_id:
                return
            handler = self._handlers.get(notice["kind"])
            if handler is not None:
                handler(notice["data"])
        except Exception:
            # One bad notice must not end the listener (a newer node's kind, say).
            log.exception("cluster.bus_bad_notice")
