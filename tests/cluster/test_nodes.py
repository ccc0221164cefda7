"""Two nodes on one PostgreSQL database and Redis: what one node learns, the other uses."""

from __future__ import annotations

from pathlib import Path

from harness.cluster import cluster
from tests.e2e.test_click_to_dial import c2d_body, post


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
