"""A node dies, the service does not: kill -9 of the node holding a call, and a survivor
ends the call at both phones, says HANGUP ``failed`` once per leg, sends what the dead node
had not delivered, and serves the next call; the node comes back and serves too. A node
that only paused (its heartbeat stopped, its database connection did not) is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.baresip import Baresip
from harness.cluster import Cluster, cluster
from harness.receiver import Receiver
from harness.server import RunningServer
from harness.wait import wait_until
from tests.e2e.test_call_events import webhook_block
from tests.e2e.test_click_to_dial import c2d_body, post

UP = ["RINGING", "ACTIVE"]
FAILED = [*UP, "HANGUP(failed)"]
# Retries within half a second: the events a dead node could not deliver go out soon after
# the receiver is back, not after the minutes of the default backoff.
FAST_RETRIES = "webhook_retry_first_interval = 0.2\nwebhook_retry_max_interval = 0.5"
# Seconds from kill -9 to both BYEs: heartbeat TTL 3 s + 1 s beat, with slack for a loaded
# machine. Measured (printed with -s), 14 runs on 2 busy cores: 2.55 to 3.64 s, p50 3.42 s.
BYE_WITHIN = 15.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()  # not listening until a test starts it
    yield receiver
    receiver.stop()


def call_up(node: RunningServer, jane: Baresip, john: Baresip) -> dict[str, str]:
    """A click-to-dial from 210 to 200 held by ``node``, answered, its dialogs saved."""
    after_jane, after_john = jane.mark(), john.mark()
    answer = post(node, c2d_body("200"))
    assert answer.status_code == 202, answer.text
    jane.wait_event("CALL_ESTABLISHED", after=after_jane)
    john.wait_event("CALL_ESTABLISHED", after=after_john)
    call_id = str(answer.json()["call_id"])
    wait_until(lambda: len(node.query("SELECT id FROM dialogs WHERE call_id = :call",
                                      call=call_id)) == 2, 10,
               message="the call's two dialogs were not saved")
    legs = {leg["extension"]: str(leg["id"]) for leg in
            node.query("SELECT id, extension FROM legs WHERE call_id = :call", call=call_id)}
    wait_until(lambda: all(node.states(leg) == UP for leg in legs.values()), 10,
               message=f"legs not answered: {[node.states(leg) for leg in legs.values()]}")
    return legs


def crash(node: RunningServer) -> None:
    """kill -9 of the node as a crash takes it: the server and its events worker."""
    workers = node.worker_pids()
    node.stop(signal.SIGKILL)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class LiveStream:
    """Jane's ``GET /v3/events`` on a node, from now on (no replay): the first event."""

    def __init__(self, node: RunningServer) -> None:
        self._events: list[dict[str, Any]] = []
        self._open = threading.Event()
        self._thread = threading.Thread(target=self._listen, args=(node,), daemon=True)
        self._thread.start()
        assert self._open.wait(10), "the event stream did not open"

    def _listen(self, node: RunningServer) -> None:
        with httpx.stream("GET", node.http + "/v3/events", timeout=30,
                          headers={"Authorization": "Bearer tok-jane"}) as response:
            assert response.status_code == 200
            self._open.set()
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self._events.append(json.loads(line[6:]))
                    return

    def events(self, timeout: float = 10) -> list[dict[str, Any]]:
        self._thread.join(timeout)
        return self._events


def phones(nodes: Cluster, phone: Any) -> tuple[Baresip, Baresip]:
    """Jane and John registered through the edge: the BYEs of a takeover reach them
    through it too (the route set of the saved dialogs)."""
    return phone("210", "auto", server=nodes.phones), phone("200", "auto", server=nodes.phones)


@pytest.mark.parametrize("receiver_down", [False, True], ids=["receiver-up", "receiver-down"])
def test_kill_9_of_the_node_holding_a_call_byes_both_phones_and_fails_each_leg_once(
    tmp_path: Any, phone: Any, receiver: Receiver, receiver_down: bool
) -> None:
    if not receiver_down:
        receiver.start()
    with cluster(tmp_path, server_extra=FAST_RETRIES, webhook=webhook_block(receiver)) as nodes:
        n1, n2 = nodes.node(1), nodes.node(2)
        jane, john = phones(nodes, phone)
        legs = call_up(n1, jane, john)
        if not receiver_down:  # n1 delivered the first events itself, and wrote so
            receiver.wait_states("210", UP)
            receiver.wait_states("200", UP)
            wait_until(lambda: not n1.query(
                "SELECT id FROM deliveries WHERE status <> 'delivered'"), 10,
                message="n1 did not write its deliveries' outcomes")
        stream = LiveStream(n2)  # jane's live events, open on the survivor
        killed = time.monotonic()
        crash(n1)
        jane.wait_event("CALL_CLOSED", BYE_WITHIN)
        john.wait_event("CALL_CLOSED", BYE_WITHIN)
        print(f"\nkill -9 to both phones' BYE: {time.monotonic() - killed:.2f} s")
        assert [(event["id"], event["state"], event.get("reason"))
                for event in stream.events()] == [(legs["210"], "HANGUP", "failed")]
        for leg in legs.values():  # one HANGUP per leg, in the database
            wait_until(lambda leg=leg: n2.states(leg) == FAILED, 10,  # type: ignore[misc]
                       message=f"leg {leg}: {n2.states(leg)}")
        if receiver_down:
            receiver.start()
        for extension in ("210", "200"):  # ... and at the receiver, in the leg's order
            events = receiver.wait_states(extension, FAILED, timeout=15)
            assert [event["sequence"] for event in events] == ["1", "2", "3"]
        delivered = [post.headers["webhook-id"] for post in receiver.delivered()]
        assert len(delivered) == len(set(delivered)) == 6, delivered
        wait_until(lambda: {(row["node_id"], row["status"]) for row in n2.query(
            "SELECT node_id, status FROM deliveries WHERE status <> 'delivered'")} == set(), 10,
            message="deliveries left undelivered")
        assert "cluster.took_over" in n2.log
        assert "sip.ended_dialogs_taken_over" in n2.log
        assert not n2.query("SELECT id FROM dialogs WHERE node_id = 'n1'")
        # The next call goes through the survivor.
        call_up(n2, jane, john)


def test_a_restarted_node_starts_does_not_fail_its_old_legs_again_and_serves(
    tmp_path: Any, phone: Any
) -> None:
    with cluster(tmp_path) as nodes:
        n1, n2 = nodes.node(1), nodes.node(2)
        jane, john = phones(nodes, phone)
        legs = call_up(n1, jane, john)
        crash(n1)
        jane.wait_event("CALL_CLOSED", BYE_WITHIN)
        john.wait_event("CALL_CLOSED", BYE_WITHIN)
        wait_until(lambda: "cluster.took_over" in n2.log, 10)
        n1.start()  # its own recovery finds nothing left: n2 took it all
        call_up(n1, jane, john)
        for leg in legs.values():
            assert n1.states(leg) == FAILED
        assert "legs.closed_after_crash" not in n1.log


def test_a_paused_node_keeps_its_lock_and_its_calls(tmp_path: Any, phone: Any) -> None:
    # SIGSTOP for longer than the heartbeat's TTL: to Redis it is dead, to PostgreSQL its
    # connection (and so its lock) is alive. Taking it over would BYE calls that still run.
    with cluster(tmp_path) as nodes:
        n1, n2 = nodes.node(1), nodes.node(2)
        jane, john = phones(nodes, phone)
        legs = call_up(n1, jane, john)
        assert n1.process is not None
        os.kill(n1.process.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: "cluster.take_over_later" in n2.log, 15,
                       message=f"n2 did not try to take n1 over:\n{n2.log}")
        finally:
            os.kill(n1.process.pid, signal.SIGCONT)
        wait_until(n1.healthy, 10)
        assert "cluster.took_over" not in n2.log
        assert not jane.find_events("CALL_CLOSED") and not john.find_events("CALL_CLOSED")
        assert all(n1.states(leg) == UP for leg in legs.values())
        jane.hangup()  # the call was intact all along: it ends as any other
        john.wait_event("CALL_CLOSED")
        for leg in legs.values():
            wait_until(lambda leg=leg: n1.states(leg) == [*UP, "HANGUP(completed)"], 10,  # type: ignore[misc]
                       message=f"leg {leg}: {n1.states(leg)}")


def test_two_survivors_take_a_dead_node_over_once(
    tmp_path: Any, phone: Any, receiver: Receiver
) -> None:
    # n2 and n3 both see n1 dead and offer to take it over: the dead node's key in
    # PostgreSQL lets one transaction at a time in; the second finds nothing left, is told
    # "later" while the first runs, or no longer sees n1 (forgotten once taken over).
    receiver.start()
    with cluster(tmp_path, nodes=3, webhook=webhook_block(receiver)) as nodes:
        n1 = nodes.node(1)
        jane, john = phones(nodes, phone)
        legs = call_up(n1, jane, john)
        crash(n1)
        jane.wait_event("CALL_CLOSED", BYE_WITHIN)
        john.wait_event("CALL_CLOSED", BYE_WITHIN)
        survivors = nodes.nodes[1:]
        wait_until(lambda: any("cluster.took_over" in node.log for node in survivors), 10,
                   message="no survivor took n1 over")
        ended = [node for node in survivors if "sip.ended_dialogs_taken_over" in node.log]
        assert len(ended) == 1, "both survivors sent BYE"
        for extension in ("210", "200"):
            receiver.wait_states(extension, FAILED, timeout=15)
        for leg in legs.values():
            assert n1.states(leg) == FAILED
        for phone_ in (jane, john):
            assert len(phone_.received("BYE")) == 1
