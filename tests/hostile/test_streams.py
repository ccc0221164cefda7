"""The live event stream under hostile use: revoked and expired tokens, too many streams,
made-up Last-Event-IDs, and a server stopping with streams open."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx
import pytest

from harness.server import HOOKSWITCH, TENANT, RunningServer, user_id_for
from harness.wait import wait_until
from tests.support.streams import OpenStream


def hookswitch(server: RunningServer, *args: str) -> str:
    done = subprocess.run([str(HOOKSWITCH), *args, "--config",
                           str(server.workdir / "hookswitch.toml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_revoking_a_token_closes_its_open_streams_and_no_other(server: RunningServer) -> None:
    token = hookswitch(server, "token", "create", "--tenant", TENANT, "--extension", "210")
    revoked, kept = OpenStream(server, token), OpenStream(server, "tok-jane")
    assert (revoked.status, kept.status) == (200, 200)
    hookswitch(server, "token", "revoke", token)
    wait_until(lambda: not revoked.open, 10, message="the revoked token's stream is open")
    assert revoked.ended_cleanly and kept.open
    assert httpx.get(server.http + "/v3/events",
                     headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_an_expired_token_closes_its_stream(server: RunningServer) -> None:
    token = hookswitch(server, "token", "create", "--tenant", TENANT, "--extension", "210",
                       "--expires-in", "6s")  # room for a slow start of the command itself
    stream = OpenStream(server, token)
    assert stream.status == 200
    wait_until(lambda: not stream.open, 20, message="the expired token's stream is open")


@pytest.fixture
def capped(server_factory) -> RunningServer:  # type: ignore[no-untyped-def]
    return server_factory(server_extra="max_streams_per_user = 2")


def test_streams_per_user_are_capped(capped: RunningServer) -> None:
    first, second = OpenStream(capped, "tok-jane"), OpenStream(capped, "tok-jane")
    assert (first.status, second.status) == (200, 200)
    refused = httpx.get(capped.http + "/v3/events",
                        headers={"Authorization": "Bearer tok-jane"}, timeout=5)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "too-many-streams"
    assert "Retry-After" in refused.headers
    # Another user has a budget of its own.
    assert OpenStream(capped, "tok-john").status == 200


def test_made_up_last_event_ids_are_refused_without_a_500(
    server: RunningServer, phone
) -> None:  # type: ignore[no-untyped-def]
    phone("200", "auto")
    jane = phone("210", "auto")
    jane.dial(f"sip:200@127.0.0.1:{server.sip_port}")
    server.wait_states("200", ["RINGING", "ACTIVE"])
    server.wait_states("210", ["RINGING", "ACTIVE"])
    johns = server.query("SELECT uid FROM events WHERE user_id = :u",
                         u=user_id_for(TENANT, "200"))[0]["uid"]
    for cursor in ["²", "9" * 5000, "9223372036854775808", "20", "-1", "msg_xyz",
                   "msg_" + "0" * 32, johns]:
        answer = httpx.get(server.http + "/v3/events", timeout=5, headers={
            "Authorization": "Bearer tok-jane", "Last-Event-ID": cursor.encode()})
        assert answer.status_code == 400, (cursor[:20], answer.text)
        assert answer.json()["code"] == "bad-last-event-id"
    # Her own event ids do resume, and so does "0" (her whole stream).
    janes = server.query("SELECT uid FROM events WHERE user_id = :u ORDER BY id",
                         u=user_id_for(TENANT, "210"))
    stream = OpenStream(server, "tok-jane", last_event_id=janes[0]["uid"])
    wait_until(lambda: sum(line.startswith("data: ") for line in stream.lines) >= 1, 5)
    assert stream.lines[2] == f"id: {janes[1]['uid']}"
    assert OpenStream(server, "tok-jane", last_event_id="0").status == 200


def test_stopping_with_streams_open_ends_them_first_without_tracebacks(
    server: RunningServer,
) -> None:
    streams = [OpenStream(server, "tok-jane"), OpenStream(server, "tok-john")]
    assert [s.status for s in streams] == [200, 200]
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    # uvicorn's graceful timeout is 2 s: before, it waited for the streams that long and
    # then cancelled them, logging a CancelledError traceback per client.
    assert time.monotonic() - started < 2.0
    for stream in streams:
        wait_until(lambda s=stream: not s.open, 5)
        assert stream.ended_cleanly, stream.error
    assert "Traceback" not in server.log and "CancelledError" not in server.log
