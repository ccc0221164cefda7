"""Click-to-dial and hangup through POST /v3/call_control/ with real phones."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import requests

from harness import free_udp_port, sipp_register
from harness.server import PASSWORDS, TENANT, RunningServer

URL = "/v3/call_control/"
# The vendor page's curl body, byte for byte (tenant of Example 4, 210 -> 200).
SEED_CURL_BODY = (
    '{"command": "click-to-dial", "user": {"tenant_id": "b11d749b-8eb7-4236-a068-3d94ba3860d6",'
    ' "user_extension": "210"}, "payload": {"destination": "200"}}'
)


def post(server: RunningServer, body: str | dict, token: str = "tok-jane",
         **headers: str) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(
        server.http + URL, content=content, timeout=10,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}",
                 **headers},
    )


def hangup_body(leg_id: str, extension: str = "210") -> dict:
    return {"command": "hangup", "user": {"tenant_id": TENANT, "user_extension": extension},
            "payload": {"call_leg_id": leg_id}}


def c2d_body(destination: str, extension: str = "210", tenant: str = TENANT) -> dict:
    return {"command": "click-to-dial",
            "user": {"tenant_id": tenant, "user_extension": extension},
            "payload": {"destination": destination}}


def test_seed_curl_body_rings_the_user_first_then_connects_and_hangup_byes_both(
    server: RunningServer, jane, john  # type: ignore[no-untyped-def]
) -> None:
    answer = post(server, SEED_CURL_BODY)
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started["state"] == "RINGING" and started["call_id"]
    incoming = jane.incoming_call()
    assert incoming.get("peerdisplayname") == "(pick up to call)"
    assert incoming["param"].startswith("sip:200@")  # the destination, shown as the number
    assert not john.find_events("CALL_ESTABLISHED")  # nothing rings there before pick-up
    jane.answer()
    john.wait_event("CALL_ESTABLISHED")
    [invite] = john.received("INVITE")
    assert '"Jane Doe" <sip:210@' in invite or "Jane Doe <sip:210@" in invite
    assert "pick up" not in invite
    # The destination's SDP reaches the user's phone in a re-INVITE; media then flows.
    jane.wait_received("INVITE", count=2)
    jane.wait_event("CALL_RTPESTAB")
    john.wait_event("CALL_RTPESTAB")
    leg_210 = server.wait_states("210", ["RINGING", "ACTIVE"])
    assert leg_210 == started["call_leg_id"]
    server.wait_states("200", ["RINGING", "ACTIVE"])

    done = post(server, hangup_body(started["call_leg_id"]))
    assert done.status_code == 200, done.text
    assert done.json() == {"call_leg_id": leg_210, "call_id": started["call_id"],
                           "state": "HANGUP", "reason": "api"}
    jane.wait_received("BYE")
    john.wait_received("BYE")
    server.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(api)"])
    server.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(api)"])
    # Hanging up an ended leg is not an error: it answers its final state.
    again = post(server, hangup_body(leg_210))
    assert again.status_code == 200
    assert (again.json()["state"], again.json()["reason"]) == ("HANGUP", "api")


def test_python_sample_as_written_with_requests(
    server: RunningServer, jane  # type: ignore[no-untyped-def]
) -> None:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer tok-jane"}
    my_dict = {"command": "click-to-dial",
               "user": {"tenant_id": TENANT, "user_extension": "210"},
               "payload": {"destination": "200"}}
    response = requests.post(server.http + URL, headers=headers, json=json.dumps(my_dict),
                             timeout=10)
    assert response.status_code == 202, response.text
    jane.incoming_call()


def test_php_and_csharp_body_with_single_quoted_dicts(
    server: RunningServer, jane  # type: ignore[no-untyped-def]
) -> None:
    body = {
        "command": "click-to-dial",
        "user": "{'tenant_id': 'b11d749b-8eb7-4236-a068-3d94ba3860d6', 'user_extension': '210'}",
        "payload": "{'destination': '200'}",
    }
    answer = post(server, body)
    assert answer.status_code == 202, answer.text
    jane.incoming_call()
    leg = answer.json()["call_leg_id"]
    php_hangup = {"command": "hangup", "user": body["user"],
                  "payload": "{'call_leg_id': '" + leg + "'}"}
    assert post(server, php_hangup).status_code == 200
    jane.wait_event("CALL_CLOSED")
    server.wait_states("210", ["RINGING", "HANGUP(api)"])


def test_hangup_while_only_the_users_phone_rings_sends_cancel(
    server: RunningServer, jane  # type: ignore[no-untyped-def]
) -> None:
    started = post(server, c2d_body("200")).json()
    jane.incoming_call()
    assert post(server, hangup_body(started["call_leg_id"])).json()["state"] == "HANGUP"
    jane.wait_received("CANCEL")
    jane.wait_event("CALL_CLOSED")
    server.wait_states("210", ["RINGING", "HANGUP(api)"])
    assert len(server.legs()) == 1  # the destination never rang


def test_user_who_does_not_pick_up_ends_no_answer(
    server_factory, phone  # type: ignore[no-untyped-def]
) -> None:
    server = server_factory(click_to_dial_timeout=2)
    jane = phone("210", server=server)
    assert post(server, c2d_body("200")).status_code == 202
    jane.incoming_call()
    jane.wait_received("CANCEL", timeout=10)
    server.wait_states("210", ["RINGING", "HANGUP(no-answer)"])


def test_busy_destination_ends_the_users_leg_busy(
    server: RunningServer, make_sipp, phone, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    port = free_udp_port()
    assert sipp_register(server.sip, "200", PASSWORDS["200"], port, workdir=tmp_path) == 0
    make_sipp("uas_busy.xml", local_port=port, remote=None)
    jane = phone("210", "auto")
    assert post(server, c2d_body("200")).status_code == 202
    jane.wait_event("CALL_ESTABLISHED")
    jane.wait_received("BYE")
    server.wait_states("210", ["RINGING", "HANGUP(busy)"])
    server.wait_states("200", ["RINGING", "HANGUP(busy)"])


def test_external_destination_goes_through_the_trunk_carrier(
    server: RunningServer, make_sipp, phone  # type: ignore[no-untyped-def]
) -> None:
    carrier = make_sipp("uas_answer.xml", local_port=server.trunk_port, remote=None)
    jane = phone("210", "auto")
    started = post(server, c2d_body("+32470123456")).json()
    [invite] = carrier.wait_received("INVITE")
    assert invite.startswith("INVITE sip:+32470123456@")
    assert "pick up" not in invite and "+3228990210" in invite
    server.wait_states("210", ["RINGING", "ACTIVE"])
    assert post(server, hangup_body(started["call_leg_id"])).status_code == 200
    carrier.wait_received("BYE")
    jane.wait_received("BYE")
    server.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(api)"])


def test_auto_answer_headers_only_on_the_first_leg(
    server_factory, phone  # type: ignore[no-untyped-def]
) -> None:
    server = server_factory(auto_answer="210")
    jane = phone("210", server=server)
    john = phone("200", "auto", server=server)
    post(server, c2d_body("200"))
    [first] = jane.wait_received("INVITE")
    assert "answer-after=0" in first and "p-auto-answer" in first.lower()
    jane.answer()
    [second] = john.wait_received("INVITE")
    assert "answer-after" not in second and "auto-answer" not in second.lower()


def test_idempotent_retry_rings_nobody_twice(
    server: RunningServer, jane  # type: ignore[no-untyped-def]
) -> None:
    first = post(server, c2d_body("200"), **{"Idempotency-Key": "crm-click-42"})
    second = post(server, c2d_body("200"), **{"Idempotency-Key": "crm-click-42"})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    jane.incoming_call()
    server.wait_states("210", ["RINGING"])
    assert len(server.legs()) == 1
    assert len(jane.received("INVITE")) == 1
