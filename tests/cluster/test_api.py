"""Any node answers any API request (the issue "Any node answers any API request"): a leg
command reaches the node that holds the leg and its answer comes back; an Idempotency-Key
and the rate-limit budget are the cluster's, not a node's; the live calls are every node's.

Phones register directly with a node (no edge): a node's SIP socket is where its calls'
media and dialogs are, so a call a phone places through node 2 is held by node 2.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from harness import sdp_direction
from harness.cluster import Cluster, cluster
from harness.server import RunningServer
from harness.wait import wait_until
from tests.e2e.test_call_transfer import command, dial_uri
from tests.e2e.test_click_to_dial import c2d_body, hangup_body, post


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path) as running:
        yield running


def jane_calls_john_through(nodes: Cluster, node: RunningServer,  # type: ignore[no-untyped-def]
                            phone) -> tuple[str, object, object]:
    """Jane (210) and John (200, answers by himself) registered through the edge; Jane
    calls John straight at ``node``, so ``node`` holds both legs. Returns Jane's leg and
    the phones."""
    jane = phone("210", server=nodes.phones)
    john = phone("200", "auto", server=nodes.phones)
    jane.dial(dial_uri(node, "200"))
    jane.wait_event("CALL_ESTABLISHED")
    leg = node.wait_states("210", ["RINGING", "ACTIVE"])
    node.wait_states("200", ["RINGING", "ACTIVE"])
    return leg, jane, john


@contextmanager
def stopped(node: RunningServer) -> Iterator[None]:
    """The node's server process stopped (SIGSTOP) and always continued after."""
    assert node.process is not None
    node.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        node.process.send_signal(signal.SIGCONT)


def test_hangup_on_node_1_of_a_leg_node_2_holds_byes_both_phones(
    nodes: Cluster, phone  # type: ignore[no-untyped-def]
) -> None:
    n1, n2 = nodes.node(1), nodes.node(2)
    jane = phone("210", "auto", server=nodes.phones)
    john = phone("200", "auto", server=nodes.phones)
    started = post(n2, c2d_body("200"))
    assert started.status_code == 202, started.text
    leg = started.json()["call_leg_id"]
    john.wait_event("CALL_ESTABLISHED")
    n2.wait_states("210", ["RINGING", "ACTIVE"])

    done = post(n1, hangup_body(leg))
    # n2's answer: it ended the call itself (from the database n1 would have seen ACTIVE).
    assert done.status_code == 200, done.text
    assert done.json() == {"call_leg_id": leg, "call_id": started.json()["call_id"],
                           "state": "HANGUP", "reason": "api"}
    assert done.headers["content-type"] == "application/json"
    assert done.headers["ratelimit-limit"] == "20"
    jane.wait_received("BYE")
    john.wait_received("BYE")
    n2.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(api)"])
    n2.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(api)"])
    [row] = n1.query("SELECT node_id FROM legs WHERE id = :leg", leg=leg)
    assert row["node_id"] == "n2"


def test_hangup_on_node_1_right_after_click_to_dial_on_node_2_cancels_the_ringing(
    nodes: Cluster, phone  # type: ignore[no-untyped-def]
) -> None:
    """Sent at once, the hangup may arrive before node 2's worker recorded the leg: node 1
    then asks the other nodes which holds it (either way, node 2 carries it out)."""
    n1, n2 = nodes.node(1), nodes.node(2)
    jane = phone("210", server=nodes.phones)  # rings; nobody picks up
    phone("200", "auto", server=nodes.phones)
    started = post(n2, c2d_body("200"))
    assert started.status_code == 202, started.text
    leg = started.json()["call_leg_id"]
    done = post(n1, hangup_body(leg))
    assert (done.status_code, done.json()["state"], done.json()["reason"]) == (
        200, "HANGUP", "api"), done.text
    n2.wait_states("210", ["RINGING", "HANGUP(api)"])
    jane.wait_received("CANCEL")


def test_hold_and_resume_on_node_1_of_a_call_node_2_holds(
    nodes: Cluster, phone  # type: ignore[no-untyped-def]
) -> None:
    n1, n2 = nodes.node(1), nodes.node(2)
    leg, jane, john = jane_calls_john_through(nodes, n2, phone)

    held = command(n1, "hold", "210", call_leg_id=leg)
    assert (held.status_code, held.json()) == (200, {"call_leg_id": leg, "state": "HELD"})
    # Counted once, by the owner: the forwarding node does not spend the budget too.
    assert held.headers["ratelimit-remaining"] == "19"
    assert sdp_direction(jane.wait_received("INVITE", count=1)[-1]) == "inactive"  # type: ignore[attr-defined]
    john.wait_received("INVITE", count=2)  # type: ignore[attr-defined]
    resumed = command(n1, "resume", "210", call_leg_id=leg)
    assert (resumed.status_code, resumed.json()["state"]) == (200, "ACTIVE")
    assert resumed.headers["ratelimit-remaining"] == "18"
    assert sdp_direction(jane.wait_received("INVITE", count=2)[-1]) == "sendrecv"  # type: ignore[attr-defined]

    jane.hangup()  # type: ignore[attr-defined]
    n2.wait_states("210", ["RINGING", "ACTIVE", "HELD", "ACTIVE", "HANGUP(completed)"])
    # Ended: n1 answers from the database as a single node does.
    ended = command(n1, "hold", "210", call_leg_id=leg)
    assert (ended.status_code, ended.json()["code"]) == (409, "ended")


def test_the_same_idempotency_key_on_both_nodes_rings_once(
    nodes: Cluster, phone  # type: ignore[no-untyped-def]
) -> None:
    n1, n2 = nodes.node(1), nodes.node(2)
    jane = phone("210", server=nodes.phones)  # rings, nobody picks up
    phone("200", "auto", server=nodes.phones)
    key = {"Idempotency-Key": "ring-once-across-nodes"}
    barrier = threading.Barrier(2)

    def send(node: RunningServer) -> httpx.Response:
        barrier.wait(5)  # both leave together: the two requests overlap
        return post(node, c2d_body("200"), **key)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(send, [n1, n2])
    assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
    assert first.json() == second.json()
    leg = first.json()["call_leg_id"]
    # The first answer is committed after its leg (one writer, in order): no second leg.
    assert [row["id"] for row in n1.query("SELECT id FROM legs WHERE extension = '210'")] \
        == [leg]
    jane.incoming_call()
    assert len(jane.find_events("CALL_INCOMING")) == 1

    # And again on either node, later: replayed, nothing rings.
    again = post(n2, c2d_body("200"), **key)
    assert (again.status_code, again.json()) == (202, first.json())
    done = post(n1, hangup_body(leg))  # whichever node holds it
    assert (done.status_code, done.json()["state"]) == (200, "HANGUP"), done.text
    assert len(jane.find_events("CALL_INCOMING")) == 1


def test_the_rate_limit_budget_is_one_across_the_nodes(nodes: Cluster) -> None:
    n1, n2 = nodes.node(1), nodes.node(2)
    headers = {"Authorization": "Bearer tok-jane", "Content-Type": "application/json"}
    with httpx.Client(timeout=10, headers=headers) as client:
        # 20 requests (the burst) half on each node: each counts, each is a 400.
        answers = [client.post(node.http + "/v3/call_control/", content="{}")
                   for _ in range(10) for node in (n1, n2)]
        assert {answer.status_code for answer in answers} == {400}
        over = [client.post(node.http + "/v3/call_control/", content="{}")
                for node in (n1, n2)]
    for answer in over:
        assert answer.status_code == 429, answer.text
        assert answer.json()["code"] == "rate-limited"
        assert int(answer.headers["retry-after"]) >= 1


def test_live_calls_on_node_1_list_a_call_node_2_holds(
    nodes: Cluster, phone  # type: ignore[no-untyped-def]
) -> None:
    n1, n2 = nodes.node(1), nodes.node(2)
    leg, jane, _ = jane_calls_john_through(nodes, n2, phone)
    auth = {"Authorization": "Bearer tok-jane"}

    on_n1 = httpx.get(n1.http + "/v3/calls", headers=auth, timeout=10)
    on_n2 = httpx.get(n2.http + "/v3/calls", headers=auth, timeout=10)
    assert on_n1.status_code == on_n2.status_code == 200
    assert on_n1.json() == on_n2.json()  # the same answer, shape and values
    [call] = on_n1.json()["calls"]
    assert (call["call_leg_id"], call["state"]) == (leg, "ACTIVE")

    jane.hangup()  # type: ignore[attr-defined]
    n2.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(completed)"])
    after = httpx.get(n1.http + "/v3/calls", headers=auth, timeout=10)
    assert after.json() == {"calls": []}


def test_a_command_waits_for_an_owner_stopped_for_a_second(
    nodes: Cluster, phone  # type: ignore[no-untyped-def]
) -> None:
    """A node that stops answering for a moment (a GC pause, a busy host): the command
    forwarded to it is carried out when it is back, and the client gets its answer."""
    n1, n2 = nodes.node(1), nodes.node(2)
    leg, jane, _ = jane_calls_john_through(nodes, n2, phone)

    with ThreadPoolExecutor(1) as pool, stopped(n2):
        began = time.monotonic()
        pending = pool.submit(command, n1, "hold", "210", call_leg_id=leg)
        # The scenario's pause (not a synchronisation): the owner is away ~1 s.
        assert not pending.done()
        threading.Event().wait(1.0)
    held = pending.result(10)
    assert time.monotonic() - began >= 1.0
    assert (held.status_code, held.json()) == (200, {"call_leg_id": leg, "state": "HELD"})
    assert sdp_direction(jane.wait_received("INVITE", count=1)[-1]) == "inactive"  # type: ignore[attr-defined]

    jane.hangup()  # type: ignore[attr-defined]
    n2.wait_states("210", ["RINGING", "ACTIVE", "HELD", "HANGUP(completed)"])


def test_an_owner_away_longer_than_the_bound_is_a_503_with_retry_after(
    nodes: Cluster, phone  # type: ignore[no-untyped-def]
) -> None:
    """Past the bound (api/forward.FORWARD_WITHIN) the client is told, never left waiting
    nor answered with a guess; sent again once the owner is back, the hold is carried out
    (hold answers the leg's state: safe to repeat)."""
    n1, n2 = nodes.node(1), nodes.node(2)
    leg, jane, _ = jane_calls_john_through(nodes, n2, phone)

    with stopped(n2):
        away = command(n1, "hold", "210", call_leg_id=leg)
    assert away.status_code == 503, away.text
    assert away.headers["content-type"] == "application/problem+json"
    assert away.json()["code"] == "node-unavailable"
    assert int(away.headers["retry-after"]) >= 1

    def held() -> httpx.Response | None:
        # Until n2 beats again, n1 may see it dead and answer from the database (409).
        answer = command(n1, "hold", "210", call_leg_id=leg)
        return answer if answer.status_code == 200 else None

    retried = wait_until(held, 10, interval=0.2, message="hold once n2 is back")
    assert retried.json() == {"call_leg_id": leg, "state": "HELD"}
    assert sdp_direction(jane.wait_received("INVITE", count=1)[-1]) == "inactive"  # type: ignore[attr-defined]

    jane.hangup()  # type: ignore[attr-defined]
    n2.wait_states("210", ["RINGING", "ACTIVE", "HELD", "HANGUP(completed)"])
