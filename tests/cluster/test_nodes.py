"""Two nodes on one PostgreSQL database and Redis: what one node learns, the other uses."""

from __future__ import annotations

import json
from pathlib import Path

from harness import free_udp_port
from harness.cluster import cluster, register_through
from harness.fixtures import MakeSipp
from harness.server import PASSWORDS
from harness.wait import wait_until
from tests.e2e.test_click_to_dial import c2d_body, hangup_body, post
from tests.support.streams import OpenStream

ANSWERED = ["RINGING", "ACTIVE", "HANGUP(completed)"]


def test_an_internal_call_between_phones_registered_through_different_nodes(
    tmp_path: Path, make_sipp: MakeSipp
) -> None:
    with cluster(tmp_path) as nodes:
        callee_port, caller_port = free_udp_port(), free_udp_port()
        register_through(nodes, 1, "200", PASSWORDS["200"], callee_port, tmp_path)
        register_through(nodes, 2, "210", PASSWORDS["210"], caller_port, tmp_path)
        callee = make_sipp("uas_answer.xml", local_port=callee_port, remote=None)
        caller = make_sipp("uac_call.xml", local_port=caller_port, remote=nodes.edge,
                           service="200", auth=("210", PASSWORDS["210"]))
        assert caller.wait(30) == 0, caller.diagnostics()
        assert callee.wait(30) == 0, callee.diagnostics()
        nodes.node(1).wait_states("210", ANSWERED)
        nodes.node(1).wait_states("200", ANSWERED)


def test_click_to_dial_on_node_2_for_a_phone_registered_through_node_1_and_hangup_on_node_1(
    tmp_path: Path, make_sipp: MakeSipp
) -> None:
    with cluster(tmp_path) as nodes:
        n1, n2 = nodes.node(1), nodes.node(2)
        user_port, callee_port = free_udp_port(), free_udp_port()
        register_through(nodes, 1, "210", PASSWORDS["210"], user_port, tmp_path)
        register_through(nodes, 2, "200", PASSWORDS["200"], callee_port, tmp_path)
        user = make_sipp("uas_answer.xml", local_port=user_port, remote=None)
        callee = make_sipp("uas_answer.xml", local_port=callee_port, remote=None)
        answer = post(n2, c2d_body("200"))
        assert answer.status_code == 202, answer.text
        leg = answer.json()["call_leg_id"]
        n2.wait_states("210", ["RINGING", "ACTIVE"])
        n2.wait_states("200", ["RINGING", "ACTIVE"])
        assert nodes.holder(leg) is n2
        # Node 1 does not hold the leg: it forwards the hangup to node 2, whose answer it is.
        hung_up = post(n1, hangup_body(leg))
        assert hung_up.status_code == 200, hung_up.text
        assert hung_up.json()["call_leg_id"] == leg
        assert user.wait(30) == 0, user.diagnostics()  # both phones got BYE
        assert callee.wait(30) == 0, callee.diagnostics()
        n1.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(api)"])


def _ids_and_states(stream: OpenStream) -> list[tuple[str, str]]:
    """(id, state) of each call event the stream has shown so far."""
    shown, current = [], ""
    for line in list(stream.lines):
        if line.startswith("id: "):
            current = line.removeprefix("id: ")
        elif line.startswith("data: "):
            shown.append((current, json.loads(line.removeprefix("data: "))["state"]))
    return shown


def test_a_users_stream_on_node_1_shows_a_call_node_2_handles_and_resumes_on_node_2(
    tmp_path: Path, phone  # type: ignore[no-untyped-def]
) -> None:
    with cluster(tmp_path) as nodes:
        n1, n2 = nodes.node(1), nodes.node(2)
        on_n1 = OpenStream(n1, "tok-jane")
        assert on_n1.status == 200
        phone("210", "auto", server=nodes.phones)
        phone("200", "auto", server=nodes.phones)
        started = post(n2, c2d_body("200")).json()
        n2.wait_states("210", ["RINGING", "ACTIVE"])
        assert post(n2, hangup_body(started["call_leg_id"])).status_code == 200
        wait_until(lambda: [s for _, s in _ids_and_states(on_n1)] == [
            "RINGING", "ACTIVE", "HANGUP"], 10,
            message="node 1's stream did not show RINGING, ACTIVE, HANGUP")
        first_id = _ids_and_states(on_n1)[0][0]
        # The client reconnects to the other node, from after the first event it saw.
        on_n2 = OpenStream(n2, "tok-jane", last_event_id=first_id)
        assert on_n2.status == 200
        wait_until(lambda: _ids_and_states(on_n2) == _ids_and_states(on_n1)[1:], 10,
                   message="node 2 did not resume after the first event")
