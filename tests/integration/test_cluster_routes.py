"""The call-control route as one node of a cluster sees it, with a stand-in for the other
nodes (api/forward.py's ``Forwarder``): what it forwards and what it answers itself, and
what it tells the other nodes (``GET /v3/cluster/legs/{id}``). The real thing, two nodes
and phones, is tests/cluster/test_api.py."""

from __future__ import annotations

from collections.abc import Mapping

from hookswitch.api.forward import FORWARDED_BY, Answer
from hookswitch.calls.commands import CallAnswered, UserPickedUp
from hookswitch.calls.ids import CallId
from hookswitch.cluster.membership import NodeInfo
from tests.integration.test_calls_api import signal
from tests.support.api import Api, assert_problem, c2d, hangup

N2 = NodeInfo("n2", "127.0.0.1:9", "127.0.0.1:9")


class OtherNodes:
    """Node n2 holds the legs named ``elsewhere-…``; its answer to any forward is fixed."""

    node_id = "n1"

    def __init__(self) -> None:
        self.forwarded: list[tuple[str, bytes, dict[str, str]]] = []

    async def owner(self, leg_id: str, tenant_id: str,
                    authorization: str | None) -> NodeInfo | None:
        return N2 if leg_id.startswith("elsewhere-") else None

    async def forward(self, node: NodeInfo, method: str, path: str, body: bytes,
                      headers: Mapping[str, str]) -> Answer:
        self.forwarded.append((node.node_id, body, dict(headers)))
        return Answer(200, b'{"from":"n2"}', {"Content-Type": "application/json",
                                              "RateLimit-Remaining": "3"})


def clustered(api: Api) -> OtherNodes:
    nodes = OtherNodes()
    api.app.state.services.forwarder = nodes
    return nodes


async def test_a_command_for_a_leg_another_node_holds_gets_that_nodes_answer(api: Api) -> None:
    nodes = clustered(api)
    answer = await api.post(hangup("elsewhere-1"))
    assert (answer.status_code, answer.json()) == (200, {"from": "n2"})
    assert answer.headers["ratelimit-remaining"] == "3"  # the owner's count, not this one's
    [(node, body, headers)] = nodes.forwarded
    assert node == "n2" and b"elsewhere-1" in body
    assert headers["authorization"] == "Bearer tok-jane"
    # Not counted here: the whole burst is still this node's to spend.
    mine = await api.post(hangup("no-such-leg"))
    assert (mine.status_code, mine.headers["ratelimit-remaining"]) == (404, "19")


async def test_a_forwarded_request_is_answered_where_it_arrives(api: Api) -> None:
    nodes = clustered(api)
    answer = await api.client.post(
        "/v3/call_control/", json=hangup("elsewhere-2"),
        headers={"Authorization": "Bearer tok-jane", FORWARDED_BY: "n3"})
    assert_problem(answer, 404, "leg-not-found")
    assert nodes.forwarded == []


async def test_attended_transfer_with_the_target_on_another_node_is_a_409(api: Api) -> None:
    clustered(api)
    started = (await api.post(c2d("200"))).json()
    call_id = CallId(started["call_id"])
    await signal(api, UserPickedUp(call_id=call_id, at_us=2_000_000),
                 CallAnswered(call_id=call_id, at_us=2_000_001))
    body = {"command": "transfer", "user": c2d()["user"],
            "payload": {"call_leg_id": started["call_leg_id"],
                        "target_call_leg_id": "elsewhere-3"}}
    answer = await api.post(body)
    problem = assert_problem(answer, 409, "legs-on-different-nodes")
    assert "n2" in problem["detail"]
    # John's leg in the call is not Jane's to transfer: that is said first, as on one node.
    johns = next(leg.id for leg in api.switch.calls[call_id].legs if leg.extension == "200")
    body["payload"]["call_leg_id"] = johns
    assert_problem(await api.post(body), 403, "not-leg-owner")


async def test_a_node_tells_the_others_which_legs_it_holds_only_to_their_tenant(
    api: Api,
) -> None:
    leg = (await api.post(c2d("200"))).json()["call_leg_id"]
    path = f"/v3/cluster/legs/{leg}"
    held = await api.client.get(path, headers={"Authorization": "Bearer tok-jane"})
    assert (held.status_code, held.json()) == (200, {"call_leg_id": leg})
    foreign = await api.client.get(path, headers={"Authorization": "Bearer tok-other"})
    assert_problem(foreign, 404, "not-found")
    unknown = await api.client.get("/v3/cluster/legs/nope",
                                   headers={"Authorization": "Bearer tok-jane"})
    assert_problem(unknown, 404, "not-found")
    assert (await api.client.get(path)).status_code == 401
