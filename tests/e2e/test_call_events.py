"""Call events pushed to a real HTTP receiver, from calls between real phones."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from standardwebhooks import Webhook

from harness import free_udp_port
from harness.receiver import Receiver
from harness.server import PASSWORDS, TENANT, RunningServer
from harness.wait import wait_until

SECRET = "whsec_gibD9JIsttCK9eBLyfM/6br/ZZD3a5n3"
DOCUMENTED = {"tenant_id", "user_extension", "direction", "state", "caller_number",
              "caller_name", "callee_number", "callee_name", "id", "timestamp"}


def webhook_block(receiver: Receiver, extensions: str = "") -> str:
    return (f'[[tenants.webhooks]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
            'headers = { "X-Integration-Key" = "abc" }\n'
            + (f"extensions = {extensions}\n" if extensions else ""))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def server(server_factory, receiver: Receiver) -> RunningServer:  # type: ignore[no-untyped-def]
    return server_factory(webhook=webhook_block(receiver))


def c2d(server: RunningServer, destination: str = "200") -> dict:
    response = httpx.post(server.http + "/v3/call_control/", timeout=10, json={
        "command": "click-to-dial",
        "user": {"tenant_id": TENANT, "user_extension": "210"},
        "payload": {"destination": destination}},
        headers={"Authorization": "Bearer tok-jane"})
    assert response.status_code == 202, response.text
    return response.json()


def hangup(server: RunningServer, leg: str) -> None:
    response = httpx.post(server.http + "/v3/call_control/", timeout=10, json={
        "command": "hangup", "user": {"tenant_id": TENANT, "user_extension": "210"},
        "payload": {"call_leg_id": leg}}, headers={"Authorization": "Bearer tok-jane"})
    assert response.status_code == 200, response.text


def test_seed_click_to_dial_gives_two_streams_with_every_field(
    server: RunningServer, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    phone("210", "auto")
    phone("200", "auto")
    started = c2d(server)
    server.wait_states("200", ["RINGING", "ACTIVE"])
    hangup(server, started["call_leg_id"])
    jane = receiver.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(api)"])
    john = receiver.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(api)"])
    for stream, direction in ((jane, "out"), (john, "in")):
        for sequence, event in enumerate(stream, start=1):
            assert set(event) >= DOCUMENTED and all(isinstance(v, str) for v in event.values())
            assert event["tenant_id"] == TENANT and event["direction"] == direction
            assert (event["caller_number"], event["caller_name"]) == ("210", "Jane Doe")
            assert (event["callee_number"], event["callee_name"]) == ("200", "John Doe")
            assert event["call_id"] == started["call_id"]
            assert event["sequence"] == str(sequence)
            assert event["timestamp"].isdigit() and len(event["timestamp"]) == 16
    assert {e["id"] for e in jane} == {started["call_leg_id"]}
    assert len({e["id"] for e in john}) == 1 and john[0]["id"] != started["call_leg_id"]
    assert jane[-1]["reason"] == "api" and "reason" not in jane[0]
    # Standard Webhooks headers: a unique id per event, a verifiable signature, and the
    # webhook's static headers exactly as configured.
    delivered = receiver.delivered()
    assert len({r.headers["webhook-id"] for r in delivered}) == len(delivered) == 6
    for request in delivered:
        Webhook(SECRET).verify(request.body, request.headers)
        assert request.headers["x-integration-key"] == "abc"
        assert request.headers["webhook-timestamp"].isdigit()


def test_internal_call_dialled_from_a_phone(
    server: RunningServer, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    jane = phone("210", "auto")
    phone("200", "auto")
    jane.dial(f"sip:200@127.0.0.1:{server.sip_port}")
    receiver.wait_states("200", ["RINGING", "ACTIVE"])
    jane.hangup()
    out = receiver.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(completed)"])
    inbound = receiver.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(completed)"])
    assert out[0]["direction"] == "out" and inbound[0]["direction"] == "in"


def test_docs_example_1_inbound_from_the_carrier_answered(
    server: RunningServer, receiver: Receiver, phone, make_sipp  # type: ignore[no-untyped-def]
) -> None:
    phone("200", "auto")
    carrier = make_sipp("uac_noauth_call.xml", local_port=server.trunk_port, remote=server.sip,
                        service="+3228990200", keys={"caller": "+3228992675"})
    assert carrier.wait(15) == 0, carrier.diagnostics()
    events = receiver.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(completed)"])
    ringing = events[0]
    expected = {"tenant_id": TENANT, "caller_number": "+3228992675", "direction": "in",
                "callee_name": "John Doe", "state": "RINGING", "caller_name": "+3228992675",
                "callee_number": "200", "user_extension": "200"}
    assert {k: ringing[k] for k in expected} == expected
    assert receiver.events("+3228992675") == []  # the outside party has no stream


def test_missed_call_and_call_cancelled_while_ringing(
    server_factory, receiver: Receiver, phone, make_sipp  # type: ignore[no-untyped-def]
) -> None:
    server = server_factory(webhook=webhook_block(receiver), ring_timeout=2)
    phone("200", server=server)
    missed = make_sipp("uac_expect_fail.xml", local_port=free_udp_port(), remote=server.sip,
                       service="200", auth=("210", PASSWORDS["210"]))
    assert missed.wait(15) == 0 and missed.final_code() == 480
    receiver.wait_states("200", ["RINGING", "HANGUP(no-answer)"])
    receiver.wait_states("210", ["RINGING", "HANGUP(no-answer)"])
    cancelled = make_sipp("uac_cancel.xml", local_port=free_udp_port(), remote=server.sip,
                          service="200", auth=("210", PASSWORDS["210"]))
    assert cancelled.wait(15) == 0
    receiver.wait_states("200", ["RINGING", "HANGUP(no-answer)", "RINGING",
                                 "HANGUP(cancelled)"])


def test_hold_and_resume_from_baresip_on_both_streams(
    server: RunningServer, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    jane = phone("210", "auto")
    phone("200", "auto")
    jane.dial(f"sip:200@127.0.0.1:{server.sip_port}")
    receiver.wait_states("200", ["RINGING", "ACTIVE"])
    jane.hold()
    receiver.wait_states("210", ["RINGING", "ACTIVE", "HELD"])
    jane.resume()
    for extension in ("210", "200"):
        receiver.wait_states(extension, ["RINGING", "ACTIVE", "HELD", "ACTIVE"])


def test_receiver_failing_twice_gets_the_event_again_and_in_order(
    server_factory, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    # This webhook follows 210 only, so the two failures hit 210's first event.
    server = server_factory(webhook=webhook_block(receiver, extensions='["210"]'))
    jane = phone("210", "auto", server=server)
    phone("200", "auto", server=server)
    receiver.answers.extend([500, 500])
    jane.dial(f"sip:200@127.0.0.1:{server.sip_port}")
    server.wait_states("200", ["RINGING", "ACTIVE"])
    jane.hangup()
    receiver.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(completed)"], timeout=20)
    assert receiver.events("200") == []  # not subscribed to 200
    first_id = receiver.requests[0].headers["webhook-id"]
    assert [r.status for r in receiver.requests if r.headers["webhook-id"] == first_id] == [
        500, 500, 200]
    # Each later event of the leg was held back until the first one got through.
    assert [(r.status, r.event["sequence"]) for r in receiver.requests] == [
        (500, "1"), (500, "1"), (200, "1"), (200, "2"), (200, "3")]


@pytest.mark.sqlite_only  # a minute long and not about the database: run it in one pass
def test_receiver_down_for_a_minute_gets_everything_when_back(
    server_factory, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    server = server_factory(webhook=webhook_block(receiver),
                            server_extra="webhook_retry_max_interval = 5")
    jane = phone("210", "auto", server=server)
    phone("200", "auto", server=server)
    receiver.stop()
    down_since = time.monotonic()
    jane.dial(f"sip:200@127.0.0.1:{server.sip_port}")
    server.wait_states("200", ["RINGING", "ACTIVE"])
    jane.hangup()
    server.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(completed)"])
    # The outage lasts a minute, during which the server keeps retrying.
    wait_until(lambda: time.monotonic() - down_since >= 60 and server.query(
        "SELECT max(attempts) AS n FROM deliveries")[0]["n"] >= 8, 90, interval=1,
        message="the server did not keep retrying during the outage")
    receiver.start()
    receiver.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(completed)"], timeout=15)
    receiver.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(completed)"], timeout=15)


def test_sigkill_before_delivery_loses_nothing_after_restart(
    server: RunningServer, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    jane = phone("210", "auto")
    phone("200", "auto")
    receiver.stop()  # so nothing can be delivered before the crash
    jane.dial(f"sip:200@127.0.0.1:{server.sip_port}")
    server.wait_states("200", ["RINGING", "ACTIVE"])
    wait_until(lambda: server.query("SELECT count(*) AS n FROM deliveries")[0]["n"] == 4, 10)
    server.stop(signal.SIGKILL)
    receiver.start()
    server.start()
    receiver.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(failed)"], timeout=20)
    receiver.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(failed)"], timeout=20)


def test_410_disables_the_webhook(
    server: RunningServer, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    phone("210", "auto")
    receiver.answers.append(410)
    c2d(server)
    wait_until(lambda: server.query(
        "SELECT disabled_at FROM webhooks")[0]["disabled_at"] is not None, 10)
    assert [r.status for r in receiver.requests] == [410]
    log = server.query("SELECT status, last_error FROM deliveries")
    assert {row["status"] for row in log} == {"failed"}


def test_live_stream_resumes_with_last_event_id(
    server: RunningServer, phone  # type: ignore[no-untyped-def]
) -> None:
    phone("210", "auto")
    phone("200", "auto")
    frames: list[dict] = []

    def listen(last_event_id: str | None, count: int) -> None:
        headers = {"Authorization": "Bearer tok-jane"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        with httpx.stream("GET", server.http + "/v3/events", headers=headers,
                          timeout=20) as response:
            assert response.status_code == 200
            frame: dict = {}
            for line in response.iter_lines():
                if line.startswith("id: "):
                    frame["id"] = line[4:]
                elif line.startswith("data: "):
                    frame["event"] = json.loads(line[6:])
                elif line == "" and "event" in frame:
                    frames.append(frame)
                    frame = {}
                    if len(frames) >= count:
                        return

    # "0" replays from the start of the outbox, so it does not matter whether the stream
    # connects before or after the first event.
    first = threading.Thread(target=listen, args=("0", 1))
    first.start()
    started = c2d(server)
    first.join(20)
    assert frames and frames[0]["event"]["state"] == "RINGING"
    server.wait_states("210", ["RINGING", "ACTIVE"])
    hangup(server, started["call_leg_id"])
    server.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(api)"])
    listen(frames[0]["id"], 3)
    assert [f["event"]["state"] for f in frames] == ["RINGING", "ACTIVE", "HANGUP"]
    assert {f["event"]["id"] for f in frames} == {started["call_leg_id"]}
    assert [f["event"]["sequence"] for f in frames] == ["1", "2", "3"]
    # Each message's id is its event's own id (the webhook-id), not an outbox row number.
    assert all(re.fullmatch(r"msg_[0-9a-f]{32}", f["id"]) for f in frames)


def test_a_killed_events_worker_is_restarted_and_later_calls_are_delivered(
    server: RunningServer, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    phone("210", "auto")
    phone("200", "auto")
    [worker] = server.worker_pids()
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: server.worker_pids() not in ([], [worker]), 20,
               message="the server did not start a new events worker")
    started = c2d(server)
    server.wait_states("200", ["RINGING", "ACTIVE"])
    hangup(server, started["call_leg_id"])
    receiver.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(api)"])
    receiver.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(api)"])
    assert "events.worker_died" in server.log


def test_a_blind_transfer_continues_the_kept_partys_stream_and_opens_one_for_the_new_callee(
    server: RunningServer, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    phone("210", "auto")
    phone("200", "auto")
    phone("220", "auto")
    started = c2d(server)
    server.wait_states("200", ["RINGING", "ACTIVE"])
    response = httpx.post(server.http + "/v3/call_control/", timeout=10, json={
        "command": "transfer", "user": {"tenant_id": TENANT, "user_extension": "210"},
        "payload": {"call_leg_id": started["call_leg_id"], "destination": "220"}},
        headers={"Authorization": "Bearer tok-jane"})
    assert response.status_code == 202, response.text
    server.wait_states("220", ["RINGING", "ACTIVE"])
    john_leg = server.leg_for("200")["id"]
    ended = httpx.post(server.http + "/v3/call_control/", timeout=10, json={
        "command": "hangup", "user": {"tenant_id": TENANT, "user_extension": "200"},
        "payload": {"call_leg_id": john_leg}}, headers={"Authorization": "Bearer tok-john"})
    assert ended.status_code == 200, ended.text
    jane = receiver.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(transferred)"])
    john = receiver.wait_states("200", ["RINGING", "ACTIVE", "RINGING", "ACTIVE", "HANGUP(api)"])
    bob = receiver.wait_states("220", ["RINGING", "ACTIVE", "HANGUP(api)"])
    for stream in (jane, john, bob):  # every leg's sequence counts up from 1, one HANGUP
        assert [event["sequence"] for event in stream] == [str(n)
                                                           for n in range(1, len(stream) + 1)]
    # John's stream shows whom he talks to: Jane, then (from the new RINGING) Bob.
    assert [(e["caller_number"], e["caller_name"]) for e in john] == (
        [("210", "Jane Doe")] * 2 + [("220", "Bob Roe")] * 3)
    assert (bob[0]["caller_number"], bob[0]["callee_number"]) == ("200", "220")
    assert {e["call_id"] for e in john + bob} == {started["call_id"]}
