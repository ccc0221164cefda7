"""A leg command for a leg another node of the cluster holds goes to that node, over HTTP.

Why direct HTTP and not a queue (Redis Streams, PostgreSQL LISTEN/NOTIFY): the client waits
for the answer of the node that carries the command out (a hold answers the leg's state
once SIP confirmed it), so the forwarding node needs a reply, on one connection, within a
bound; a queue would need a reply channel beside it and would let a command be carried out
after its client has been told it failed. The legs table says which node holds a leg
(``legs.node_id``, written by that node's worker a few ms after the leg opens); before the
row exists, the other live nodes are asked (``GET /v3/cluster/legs/{id}``).

Nothing is lost silently: a failed connection (nothing was delivered) is tried again with a
back-off while the owner is alive in the membership, and a request the owner does not
answer yet is waited for, all within ``FORWARD_WITHIN`` seconds: a node that stops for a
moment (a pause, a busy host) carries the command out when it is back, and the client gets
its answer. Past the bound the client gets a 503 ``node-unavailable`` with Retry-After and
the connection is closed; a request the owner had not read by then is then dropped by it
(uvicorn reports the client gone), one it was carrying out completes. Either way the
client knows the command is not confirmed: hangup, hold and resume can be sent again as
they are (they answer the leg's state), a transfer after a look at ``GET /v3/calls``. A
request that reached the owner is never sent again by the forwarding node (a transfer must
not run twice). A forwarded request carries ``Hookswitch-Forwarded-By`` and is never
forwarded again. A client that sends that header itself gains nothing: its request is
answered by the node it reached, authenticated and counted there like any other.

The rate limit counts each request once in the cluster: the owner counts what it is
forwarded, the forwarding node does not (its budget storage is the cluster's Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import aiohttp
import structlog
from redis.exceptions import RedisError

from hookswitch.api.errors import NodeUnavailable
from hookswitch.cluster.membership import NodeInfo

log = structlog.get_logger("hookswitch.api")

FORWARDED_BY = "Hookswitch-Forwarded-By"
WHO_HOLDS = "/v3/cluster/legs/{leg_id}"  # a node's answer: 200 if its switch holds the leg

# The whole of a forward, retries included; longer than a hold's own wait for SIP
# (calls/control.CONFIRM_TIMEOUT, 2 s) and about the time a silent node takes to leave
# the membership (membership.ALIVE_FOR + HEARTBEAT_EVERY).
FORWARD_WITHIN = 5.0
FIRST_BACK_OFF = 0.05
MAX_BACK_OFF = 0.5
ASK_WITHIN = 1.0  # asking the others who holds a leg not yet in the database
RETRY_AFTER = "2"

# The client's headers that go to the owner, and the owner's that come back.
REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
ANSWER_HEADERS = ("Content-Type", "RateLimit-Limit", "RateLimit-Remaining",
                  "RateLimit-Reset", "Retry-After")


class Peers(Protocol):
    """The live nodes (``cluster.membership.Membership``)."""

    @property
    def me(self) -> NodeInfo: ...

    def node(self, node_id: str) -> NodeInfo | None: ...

    async def fetch(self, node_id: str) -> NodeInfo | None: ...

    def others(self) -> list[NodeInfo]: ...


# A leg's row, if written: (the node that holds it, its state, its tenant)
LegHolder = Callable[[str], Awaitable[tuple[str, str, str] | None]]


class Answer:
    """The owner's answer, passed on as it is."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


class Forwarder:
    def __init__(self, peers: Peers, holder: LegHolder) -> None:
        self._peers = peers
        self._holder = holder
        self._client: aiohttp.ClientSession | None = None  # one per process, made on use

    @property
    def node_id(self) -> str:
        return self._peers.me.node_id

    def live_others(self) -> set[str]:
        return {node.node_id for node in self._peers.others()}

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                                 auto_decompress=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def owner(self, leg_id: str, tenant_id: str,
                    authorization: str | None) -> NodeInfo | None:
        """The other live node that holds the tenant's leg; None when this node answers
        (it holds the leg, the leg has ended, its node is dead, or nobody has it: another
        tenant's leg is answered here, like one that does not exist)."""
        row = await self._holder(leg_id)
        if row is not None:
            node_id, state, tenant = row
            if state == "HANGUP" or node_id == self.node_id or tenant != tenant_id:
                return None
            try:
                return await self._peers.fetch(node_id)  # None: dead, the database answers
            except RedisError:
                return self._peers.node(node_id)  # as seen at the last beat
        return await self._ask_others(leg_id, authorization)

    async def _ask_others(self, leg_id: str, authorization: str | None) -> NodeInfo | None:
        """The row is written a few ms after the leg opens: until then, its node knows."""
        others = self._peers.others()
        if not others:
            return None
        headers = {FORWARDED_BY: self.node_id}
        if authorization is not None:
            headers["Authorization"] = authorization
        timeout = aiohttp.ClientTimeout(total=ASK_WITHIN)

        async def holds(node: NodeInfo) -> NodeInfo | None:
            url = f"http://{node.http}" + WHO_HOLDS.format(leg_id=leg_id)
            try:
                async with self._session().get(url, headers=headers,
                                               timeout=timeout) as answer:
                    return node if answer.status == 200 else None
            except (aiohttp.ClientError, TimeoutError):
                return None  # it does not answer: then its legs are answered from the db

        found = await asyncio.gather(*(holds(node) for node in others))
        return next((node for node in found if node is not None), None)

    async def forward(self, node: NodeInfo, method: str, path: str, body: bytes,
                      headers: Mapping[str, str]) -> Answer | None:
        """The owner's answer to the client's request; NodeUnavailable when it has none
        within FORWARD_WITHIN; None when the owner died before the request reached it
        (then this node answers from the database, as for any dead node's leg)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FORWARD_WITHIN
        sent = {name: headers[name] for name in REQUEST_HEADERS if name in headers}
        sent[FORWARDED_BY] = self.node_id
        url = f"http://{node.http}{path}"
        back_off = FIRST_BACK_OFF
        while True:
            left = deadline - loop.time()
            try:
                async with self._session().request(
                        method, url, data=body, headers=sent,
                        timeout=aiohttp.ClientTimeout(total=max(left, 0.01))) as answer:
                    content = await answer.read()
                    kept = {name: answer.headers[name] for name in ANSWER_HEADERS
                            if name in answer.headers}
                    return Answer(answer.status, content, kept)
            except aiohttp.ClientConnectorError as exc:
                # Not connected: nothing was delivered, so trying again cannot do it twice.
                log.info("api.forward_retry", node=node.node_id, error=str(exc))
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Delivered, or maybe: never sent again (a transfer must not run twice).
                log.warning("api.forward_no_answer", node=node.node_id, error=repr(exc))
                raise _unavailable(node, delivered=True) from exc
            if self._peers.node(node.node_id) is None:
                return None  # it left the cluster, undelivered: this node answers
            if loop.time() + back_off >= deadline:
                raise _unavailable(node, delivered=False)
            await asyncio.sleep(back_off)  # a back-off before connecting again, bounded
            back_off = min(back_off * 2, MAX_BACK_OFF)


def _unavailable(node: NodeInfo, *, delivered: bool) -> NodeUnavailable:
    outcome = ("the command is not confirmed: look at the leg's state or send it again"
               if delivered else "the command was not delivered")
    return NodeUnavailable(
        f"node {node.node_id}, which holds this call leg, did not answer within "
        f"{FORWARD_WITHIN:g} s ({outcome}); retry after Retry-After seconds, on any node",
        headers={"Retry-After": RETRY_AFTER})
