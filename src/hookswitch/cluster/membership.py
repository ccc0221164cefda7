"""Which nodes are alive, and where they listen: a heartbeat in Redis.

Every node writes ``<prefix>alive:<node>`` with a time to live of ``ALIVE_FOR`` every
``HEARTBEAT_EVERY`` seconds, and its addresses in the hash ``<prefix>nodes``. A node in
the hash whose heartbeat key has expired is dead: every survivor notices within
``ALIVE_FOR + HEARTBEAT_EVERY`` seconds and offers to take it over (``on_dead``); the
takeover itself is made exclusive in PostgreSQL, not here (a Redis lock can be lost with
Redis, a row lock cannot). A node that stops cleanly leaves the hash itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

import structlog
from redis.asyncio import Redis  # made with decode_responses=True: str, not bytes
from redis.exceptions import RedisError

log = structlog.get_logger("hookswitch.cluster")

HEARTBEAT_EVERY = 1.0
ALIVE_FOR = 3.0


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    http: str  # HOST:PORT of its HTTP API, where other nodes forward requests
    sip: str  # HOST:PORT of its SIP socket


# Given a dead node's id; True once its calls and deliveries were taken over (or there
# was nothing to take), so it is forgotten; False to offer again at the next beat.
OnDead = Callable[[str], Awaitable[bool]]


class Membership:
    def __init__(self, redis: Redis, prefix: str, me: NodeInfo, on_dead: OnDead) -> None:
        self._redis = redis
        self._prefix = prefix
        self.me = me
        self._on_dead = on_dead
        self._nodes: dict[str, NodeInfo] = {me.node_id: me}  # alive at the last beat
        self._task: asyncio.Task[None] | None = None
        self._dead: set[str] = set()  # announced in the log already

    @property
    def _hash(self) -> str:
        return f"{self._prefix}nodes"

    def _alive_key(self, node_id: str) -> str:
        return f"{self._prefix}alive:{node_id}"

    async def join(self) -> None:
        await self._beat()
        await self._redis.hset(self._hash, self.me.node_id, json.dumps(asdict(self.me)))
        self._task = asyncio.create_task(self._run(), name="cluster-heartbeat")

    async def leave(self) -> None:
        """A clean stop: this node's calls are ended by itself, nothing to take over."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self._redis.hdel(self._hash, self.me.node_id)
            await self._redis.delete(self._alive_key(self.me.node_id))
        except RedisError:
            log.warning("cluster.leave_failed", node=self.me.node_id)

    def node(self, node_id: str) -> NodeInfo | None:
        """A node alive at the last beat (this one included)."""
        return self._nodes.get(node_id)

    async def fetch(self, node_id: str) -> NodeInfo | None:
        """A node alive now, asked of Redis: one that joined since the last beat too (the
        others learn of it within HEARTBEAT_EVERY; a request for its legs cannot wait)."""
        known = self._nodes.get(node_id)
        if known is not None:
            return known
        raw = await self._redis.hget(self._hash, node_id)
        if raw is None or await self._redis.exists(self._alive_key(node_id)) == 0:
            return None
        return NodeInfo(**json.loads(raw))

    def dead(self) -> set[str]:
        """Nodes whose heartbeat expired and that were not taken over yet."""
        return set(self._dead)

    def others(self) -> list[NodeInfo]:
        """The other nodes alive at the last beat."""
        return [info for node_id, info in self._nodes.items() if node_id != self.me.node_id]

    async def _beat(self) -> None:
        await self._redis.set(self._alive_key(self.me.node_id), "1",
                              px=int(ALIVE_FOR * 1000))

    async def _run(self) -> None:
        while True:
            try:
                await self._beat()
                await self._look()
            except RedisError as exc:
                # Redis away: calls go on; no node is declared dead by a node that cannot see.
                log.warning("cluster.redis_unreachable", error=str(exc))
            except Exception:
                log.exception("cluster.heartbeat_failed")
            await asyncio.sleep(HEARTBEAT_EVERY)  # a period, not a synchronisation

    async def _look(self) -> None:
        known = await self._redis.hgetall(self._hash)
        ids = [str(node_id) for node_id in known]
        alive = (await self._redis.mget([self._alive_key(node_id) for node_id in ids])
                 if ids else [])
        nodes = {self.me.node_id: self.me}
        for (node_id, raw), beat in zip(known.items(), alive, strict=True):
            node = str(node_id)
            if node == self.me.node_id:
                continue
            if beat is not None:
                nodes[node] = NodeInfo(**json.loads(raw))
                # Back (paused, or cut off from Redis only): its next death is news again.
                self._dead.discard(node)
                continue
            if node not in self._dead:
                self._dead.add(node)
                log.warning("cluster.node_dead", node=node)
            # Forget it once taken over, unless it came back meanwhile (a restarted node
            # joins again).
            if (await self._on_dead(node)
                    and await self._redis.exists(self._alive_key(node)) == 0):
                await self._redis.hdel(self._hash, node)
                self._dead.discard(node)
        self._nodes = nodes
