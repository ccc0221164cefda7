"""api/forward.py against small aiohttp servers standing in for the other nodes: who holds
a leg, and forwarding with its retries and bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from harness.ports import free_tcp_port
from hookswitch.api import forward
from hookswitch.api.errors import NodeUnavailable
from hookswitch.api.forward import FORWARDED_BY, Forwarder
from hookswitch.cluster.membership import NodeInfo

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ME = NodeInfo("n1", "127.0.0.1:1", "127.0.0.1:2")


class FakePeers:
    def __init__(self, *others: NodeInfo) -> None:
        self.me = ME
        self.alive = {node.node_id: node for node in others}

    def node(self, node_id: str) -> NodeInfo | None:
        return self.alive.get(node_id)

    async def fetch(self, node_id: str) -> NodeInfo | None:
        return self.alive.get(node_id)

    def others(self) -> list[NodeInfo]:
        return list(self.alive.values())


def holder(rows: dict[str, tuple[str, str, str]]) -> forward.LegHolder:
    async def find(leg_id: str) -> tuple[str, str, str] | None:
        return rows.get(leg_id)
    return find


@asynccontextmanager
async def node_at(port: int, handler: Handler) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


async def test_a_recorded_leg_goes_to_its_live_node_and_not_when_ended_or_dead() -> None:
    n2 = NodeInfo("n2", "127.0.0.1:9", "x")
    forwarder = Forwarder(FakePeers(n2), holder({
        "live": ("n2", "ACTIVE", "t"), "ended": ("n2", "HANGUP", "t"),
        "mine": ("n1", "ACTIVE", "t"), "dead": ("n3", "ACTIVE", "t"),
        "other-tenant": ("n2", "ACTIVE", "u")}))
    assert await forwarder.owner("live", "t", None) == n2
    for leg in ("ended", "mine", "dead", "other-tenant"):
        assert await forwarder.owner(leg, "t", None) is None, leg
    await forwarder.aclose()


async def test_a_leg_not_recorded_yet_is_asked_of_the_other_nodes() -> None:
    ports = [free_tcp_port(), free_tcp_port()]
    asked: list[tuple[str, str | None, str | None]] = []

    def answering(status: int) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            asked.append((request.path, request.headers.get("Authorization"),
                          request.headers.get(FORWARDED_BY)))
            return web.json_response({}, status=status)
        return handle

    n2 = NodeInfo("n2", f"127.0.0.1:{ports[0]}", "x")
    n3 = NodeInfo("n3", f"127.0.0.1:{ports[1]}", "x")
    n4 = NodeInfo("n4", f"127.0.0.1:{free_tcp_port()}", "x")  # not answering
    forwarder = Forwarder(FakePeers(n2, n3, n4), holder({}))
    async with node_at(ports[0], answering(404)), node_at(ports[1], answering(200)):
        assert await forwarder.owner("leg-1", "t", "Bearer tok") == n3
    assert sorted(asked) == [("/v3/cluster/legs/leg-1", "Bearer tok", "n1")] * 2
    await forwarder.aclose()


async def test_forwarding_waits_for_a_node_that_starts_listening_within_the_bound() -> None:
    port = free_tcp_port()
    n2 = NodeInfo("n2", f"127.0.0.1:{port}", "x")
    forwarder = Forwarder(FakePeers(n2), holder({}))
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append((await request.read(), dict(request.headers)))
        return web.Response(body=b'{"state":"HELD"}', status=200,
                            headers={"Content-Type": "application/json",
                                     "RateLimit-Remaining": "7", "X-Other": "no"})

    async def later() -> None:
        await asyncio.sleep(0.3)  # the scenario: the owner is away for 0.3 s
        async with node_at(port, handle):
            await asyncio.sleep(2)

    coming = asyncio.create_task(later())
    answer = await forwarder.forward(
        n2, "POST", "/v3/call_control/", b'{"command":"hold"}',
        {"Authorization": "Bearer tok", "Content-Type": "application/json",
         "Idempotency-Key": "k", "Cookie": "not passed on"})
    coming.cancel()
    await asyncio.gather(coming, return_exceptions=True)
    assert answer is not None
    assert (answer.status, answer.body) == (200, b'{"state":"HELD"}')
    assert answer.headers == {"Content-Type": "application/json", "RateLimit-Remaining": "7"}
    [(body, headers)] = seen
    assert body == b'{"command":"hold"}'
    assert headers["Authorization"] == "Bearer tok" and headers["Idempotency-Key"] == "k"
    assert headers[FORWARDED_BY] == "n1" and "Cookie" not in headers
    await forwarder.aclose()


async def test_a_node_that_never_listens_is_a_503_after_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forward, "FORWARD_WITHIN", 0.5)
    n2 = NodeInfo("n2", f"127.0.0.1:{free_tcp_port()}", "x")
    forwarder = Forwarder(FakePeers(n2), holder({}))
    with pytest.raises(NodeUnavailable) as raised:
        await forwarder.forward(n2, "POST", "/v3/call_control/", b"{}", {})
    assert raised.value.headers["Retry-After"] == forward.RETRY_AFTER
    await forwarder.aclose()


async def test_a_node_that_left_the_membership_is_answered_here() -> None:
    n2 = NodeInfo("n2", f"127.0.0.1:{free_tcp_port()}", "x")
    peers = FakePeers(n2)
    forwarder = Forwarder(peers, holder({}))
    peers.alive.clear()  # it died before the request reached it
    assert await forwarder.forward(n2, "POST", "/v3/call_control/", b"{}", {}) is None
    await forwarder.aclose()
