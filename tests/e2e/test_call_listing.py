"""GET /v3/calls and /v3/calls/history with real phones and the real server: what a user
sees of a click-to-dial while it rings, once connected, and after it ended."""

from __future__ import annotations

import httpx

from harness.server import RunningServer
from tests.e2e.test_click_to_dial import c2d_body, hangup_body, post


def get(server: RunningServer, path: str, token: str = "tok-jane") -> list[dict]:
    answer = httpx.get(server.http + path, timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    calls: list[dict] = answer.json()["calls"]
    return calls


def test_a_click_to_dial_is_live_while_it_lasts_then_in_both_users_history(
    server: RunningServer, jane, john  # type: ignore[no-untyped-def]
) -> None:
    started = post(server, c2d_body("200")).json()
    [ringing] = get(server, "/v3/calls")
    assert (ringing["call_leg_id"], ringing["state"], ringing["callee_name"]) == (
        started["call_leg_id"], "RINGING", "John Doe")
    jane.incoming_call()
    jane.answer()
    server.wait_states("210", ["RINGING", "ACTIVE"])
    server.wait_states("200", ["RINGING", "ACTIVE"])
    assert [c["state"] for c in get(server, "/v3/calls")] == ["ACTIVE"]
    [johns] = get(server, "/v3/calls", "tok-john")
    assert (johns["direction"], johns["caller_name"]) == ("in", "Jane Doe")
    assert int(johns["since"]) > int(ringing["since"])  # John rang once Jane picked up

    assert post(server, hangup_body(started["call_leg_id"])).status_code == 200
    assert get(server, "/v3/calls") == [] and get(server, "/v3/calls", "tok-john") == []
    server.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(api)"])
    server.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(api)"])
    [janes_summary] = get(server, "/v3/calls/history")
    [johns_summary] = get(server, "/v3/calls/history", "tok-john")
    assert janes_summary["id"] == started["call_leg_id"]
    assert johns_summary["id"] == johns["call_leg_id"]
    for summary in (janes_summary, johns_summary):
        assert summary["call_id"] == started["call_id"]
        assert (summary["reason"], summary["sequence"]) == ("api", "4")
        started_at, answered_at, ended_at = (int(summary[name]) for name in (
            "started_at", "answered_at", "ended_at"))
        assert started_at <= answered_at <= ended_at
