"""Two nodes on one PostgreSQL database and Redis: what one node learns, the other uses."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cluster import cluster
from harness.wait import wait_until
from tests.e2e.test_click_to_dial import c2d_body, hangup_body, post
from tests.support.streams import OpenStream


def test_click_to_dial_on_node_2_rings_a_phone_registered_with_node_1(
    tmp_path: Path, phone  # type: ignore[no-untyped-def]
) -> None:
    with cluster(tmp_path) as nodes:
        n1, n2 = nodes.node(1), nodes.node(2)
        jane = phone("210", "auto", server=n1)
        john = phone("200", "auto", server=n1)
        answer = post(n2, c2d_body("200"))
        assert answer.status_code == 202, answer.text
        jane.wait_event("CALL_ESTABLISHED")
        john.wait_event("CALL_ESTABLISHED")
        n2.wait_states("210", ["RINGING", "ACTIVE"])
        [leg] = n2.query("SELECT node_id FROM legs WHERE extension = '210'")
        assert leg["node_id"] == "n2"


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
        phone("210", "auto", server=n2)
        phone("200", "auto", server=n2)
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
