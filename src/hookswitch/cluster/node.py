"""This process as a node of a cluster: its Redis connection, heartbeat and bus, and what
the server shares through them (registrations, committed call events)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hookswitch.calls.ids import UserId
from hookswitch.calls.registrations import Binding
from hookswitch.cluster import key_prefix
from hookswitch.cluster.bus import Bus, Handler
from hookswitch.cluster.membership import Membership, NodeInfo, OnDead

log = structlog.get_logger("hookswitch.cluster")

BINDING = "binding"
EVENTS = "events"


class RedisUnavailable(Exception):
    """The node cannot reach its cluster's Redis at start."""


def binding_data(user_id: str, binding: Binding | None, contact: str | None) -> dict[str, Any]:
    return {"user_id": user_id, "contact": contact,
            "binding": None if binding is None else
            asdict(binding) | {"source": list(binding.source), "path": list(binding.path)}}


def binding_of(data: dict[str, Any]) -> tuple[UserId, Binding | None, str | None]:
    fields = data["binding"]
    binding = None if fields is None else Binding(
        **(fields | {"user_id": UserId(fields["user_id"]),
                     "source": (str(fields["source"][0]), int(fields["source"][1])),
                     "path": tuple(fields["path"])}))
    return UserId(data["user_id"]), binding, data["contact"]


class ClusterNode:
    def __init__(self, redis_url: str, database: str, me: NodeInfo, *, on_dead: OnDead,
                 on_binding: Callable[[UserId, Binding | None, str | None], None],
                 on_events: Callable[[list[dict[str, Any]]], None],
                 on_gap: Callable[[], None]) -> None:
        self.prefix = key_prefix(database)
        self.redis: Redis = Redis.from_url(redis_url, decode_responses=True,
                                           socket_timeout=2.0, socket_connect_timeout=2.0,
                                           health_check_interval=5)
        self._redis_url = redis_url
        self.membership = Membership(self.redis, self.prefix, me, on_dead)
        handlers: dict[str, Handler] = {
            BINDING: lambda data: on_binding(*binding_of(data)),
            EVENTS: on_events,
        }
        self.bus = Bus(self.redis, self.prefix, me.node_id, handlers, on_gap)

    @property
    def node_id(self) -> str:
        return self.membership.me.node_id

    async def connect(self) -> None:
        """Before any data is touched: a node that cannot reach Redis does not start."""
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            await self.redis.aclose()
            raise RedisUnavailable(f"cannot reach Redis at {self._redis_url}: {exc}") from None

    async def start(self) -> None:
        """Join: listen to the bus, then beat (others may forward to it from then on)."""
        await self.bus.start()
        await self.membership.join()
        log.info("cluster.joined", node=self.node_id, prefix=self.prefix)

    async def stop(self) -> None:
        await self.membership.leave()
        await self.bus.stop()
        await self.redis.aclose()

    def binding_changed(self, user_id: str, binding: Binding | None,
                        contact: str | None) -> None:
        self.bus.publish(BINDING, binding_data(user_id, binding, contact))

    def events_committed(self, events: list[dict[str, Any]]) -> None:
        if events:
            self.bus.publish(EVENTS, events)
