"""Hold, resume, blind and attended transfer through POST /v3/call_control/, with real
phones: baresip, and sipp scenarios that check the SDP direction of every re-INVITE they
get (a scenario fails on an unexpected one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from harness import free_udp_port, sdp_direction, sipp_register
from harness.server import PASSWORDS, TENANT, RunningServer
from harness.wait import wait_until

URL = "/v3/call_control/"
TOKENS = {"210": "tok-jane", "200": "tok-john"}


def command(server: RunningServer, name: str, extension: str, **payload: str
            ) -> httpx.Response:
    body = {"command": name, "user": {"tenant_id": TENANT, "user_extension": extension},
            "payload": payload}
    return httpx.post(server.http + URL, json=body, timeout=10,
                      headers={"Authorization": f"Bearer {TOKENS[extension]}"})


def legs_of(server: RunningServer, extension: str) -> list[dict[str, Any]]:
    return [leg for leg in server.legs() if leg["extension"] == extension]


def wait_leg_states(server: RunningServer, leg_id: str, expected: list[str]) -> None:
    wait_until(lambda: server.states(leg_id) == expected, 10,
               message=f"leg {leg_id}: expected {expected}, saw {server.states(leg_id)}")


def dial_uri(server: RunningServer, target: str) -> str:
    return f"sip:{target}@127.0.0.1:{server.sip_port}"


def sipp_phone(server: RunningServer, make_sipp, extension: str, scenario: str,  # type: ignore[no-untyped-def]
               tmp_path: Path):
    """A sipp UAS registered as ``extension``."""
    port = free_udp_port()
    assert sipp_register(server.sip, extension, PASSWORDS[extension], port,
                         workdir=tmp_path) == 0
    return make_sipp(scenario, local_port=port, remote=None)


def jane_calls_john(server: RunningServer, jane) -> str:  # type: ignore[no-untyped-def]
    """Jane (210, baresip) calls 200 and it is answered; returns Jane's leg."""
    jane.dial(dial_uri(server, "200"))
    jane.wait_event("CALL_ESTABLISHED")
    return server.wait_states("210", ["RINGING", "ACTIVE"])


def test_hold_and_resume_by_api_from_both_parties_legs(
    server: RunningServer, make_sipp, jane, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    john = sipp_phone(server, make_sipp, "200", "uas_hold_resume.xml", tmp_path)
    jane_leg = jane_calls_john(server, jane)
    john_leg = server.wait_states("200", ["RINGING", "ACTIVE"])

    # Jane holds: John's phone gets a=sendonly (the scenario checks), Jane's a=inactive.
    held = command(server, "hold", "210", call_leg_id=jane_leg)
    assert (held.status_code, held.json()) == (200, {"call_leg_id": jane_leg, "state": "HELD"})
    assert sdp_direction(jane.wait_received("INVITE", count=1)[-1]) == "inactive"
    john.wait_received("INVITE", count=2)
    again = command(server, "hold", "210", call_leg_id=jane_leg)  # held already: the same
    assert (again.status_code, again.json()["state"]) == (200, "HELD")
    resumed = command(server, "resume", "210", call_leg_id=jane_leg)
    assert (resumed.status_code, resumed.json()["state"]) == (200, "ACTIVE")
    assert sdp_direction(jane.wait_received("INVITE", count=2)[-1]) == "sendrecv"
    john.wait_received("INVITE", count=3)

    # John holds from his own leg: now Jane's phone gets a=sendonly, John's a=inactive.
    assert command(server, "hold", "200", call_leg_id=john_leg).json()["state"] == "HELD"
    assert sdp_direction(jane.wait_received("INVITE", count=3)[-1]) == "sendonly"
    john.wait_received("INVITE", count=4)
    assert command(server, "resume", "200", call_leg_id=john_leg).json()["state"] == "ACTIVE"
    assert sdp_direction(jane.wait_received("INVITE", count=4)[-1]) == "sendrecv"
    john.wait_received("INVITE", count=5)

    jane.hangup()
    assert john.wait(15) == 0, john.diagnostics()  # every re-INVITE had what it expected
    events = ["RINGING", "ACTIVE", "HELD", "ACTIVE", "HELD", "ACTIVE", "HANGUP(completed)"]
    server.wait_states("210", events)
    server.wait_states("200", events)
    # Ended: nothing to hold any more.
    ended = command(server, "hold", "210", call_leg_id=jane_leg)
    assert (ended.status_code, ended.json()["code"]) == (409, "ended")


def test_a_resume_before_the_phone_answered_the_hold_still_reaches_it(
    server: RunningServer, make_sipp, jane, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    john = sipp_phone(server, make_sipp, "200", "uas_slow_hold_answer.xml", tmp_path)
    jane_leg = jane_calls_john(server, jane)
    # John's phone takes 800 ms to answer the hold: the resume waits for that answer (one
    # INVITE transaction per dialog at a time), then reaches it (the scenario checks).
    assert command(server, "hold", "210", call_leg_id=jane_leg).json()["state"] == "HELD"
    assert command(server, "resume", "210", call_leg_id=jane_leg).json()["state"] == "ACTIVE"
    assert sdp_direction(jane.wait_received("INVITE", count=2)[-1]) == "sendrecv"
    # (sipp logs our retransmissions of the unanswered hold too: look at the last one.)
    wait_until(lambda: sdp_direction(john.received("INVITE")[-1]) == "sendrecv"
               and len(john.received("INVITE")) > 2, 10, message="no resume at John's phone")
    jane.hangup()
    assert john.wait(15) == 0, john.diagnostics()
    server.wait_states("200", ["RINGING", "ACTIVE", "HELD", "ACTIVE", "HANGUP(completed)"])


def test_a_ringing_leg_cannot_be_held_nor_another_users_leg_transferred(
    server: RunningServer, phone, jane  # type: ignore[no-untyped-def]
) -> None:
    john = phone("200")  # answers by hand
    jane.dial(dial_uri(server, "200"))
    john.incoming_call()
    jane_leg = server.wait_states("210", ["RINGING"])
    john_leg = server.wait_states("200", ["RINGING"])
    ringing = command(server, "hold", "210", call_leg_id=jane_leg)
    assert (ringing.status_code, ringing.json()["code"]) == (409, "not-answered")
    john.answer()
    server.wait_states("200", ["RINGING", "ACTIVE"])
    # Jane is in the call, but the leg is John's: only he can hold or transfer it.
    for name, payload in (("transfer", {"destination": "220"}), ("hold", {})):
        refused = command(server, name, "210", call_leg_id=john_leg, **payload)
        assert (refused.status_code, refused.json()["code"]) == (403, "not-leg-owner")
    # Her own leg she can transfer; 220 has no phone registered, so John's call ends.
    own = command(server, "transfer", "210", call_leg_id=jane_leg, destination="220")
    assert (own.status_code, own.json()["transfer_call_leg_id"]) == (202, None)
    john.wait_event("CALL_CLOSED")
    server.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(transferred)"])
    server.wait_states("200", ["RINGING", "ACTIVE", "RINGING", "HANGUP(unavailable)"])


def test_blind_transfer_of_an_internal_call_to_a_third_extension(
    server: RunningServer, phone, jane, john  # type: ignore[no-untyped-def]
) -> None:
    bob = phone("220", "auto")
    jane_calls_john(server, jane)
    john_leg = server.wait_states("200", ["RINGING", "ACTIVE"])

    # John sends Jane on to Bob: John's phone is hung up, Bob's rings with Jane as caller.
    answer = command(server, "transfer", "200", call_leg_id=john_leg, destination="220")
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert (started["call_leg_id"], started["state"]) == (john_leg, "HANGUP")
    john.wait_event("CALL_CLOSED")
    incoming = bob.wait_event("CALL_ESTABLISHED")
    assert incoming.get("peerdisplayname") == "Jane Doe"
    # Jane's phone (the caller) gets Bob's media in a re-INVITE, and it flows.
    assert sdp_direction(jane.wait_received("INVITE", count=1)[-1]) == "sendrecv"
    bob.wait_event("CALL_RTPESTAB")
    server.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(transferred)"])
    server.wait_states("220", ["RINGING", "ACTIVE"])
    assert server.leg_for("220")["id"] == started["transfer_call_leg_id"]
    server.wait_states("210", ["RINGING", "ACTIVE", "RINGING", "ACTIVE"])
    jane_row = server.leg_for("210")
    assert (jane_row["callee_number"], jane_row["callee_name"]) == ("220", "Bob Roe")

    jane.hangup()
    bob.wait_event("CALL_CLOSED")
    server.wait_states("210", ["RINGING", "ACTIVE", "RINGING", "ACTIVE", "HANGUP(completed)"])
    server.wait_states("220", ["RINGING", "ACTIVE", "HANGUP(completed)"])


def test_blind_transfer_of_a_trunk_call_to_an_extension(
    server: RunningServer, make_sipp, jane, john  # type: ignore[no-untyped-def]
) -> None:
    carrier = make_sipp("uac_trunk_call_transferred.xml", local_port=server.trunk_port,
                        remote=server.sip, service="+3228990200",
                        keys={"caller": "+3228992675"})
    john.wait_event("CALL_ESTABLISHED")
    john_leg = server.wait_states("200", ["RINGING", "ACTIVE"])
    answer = command(server, "transfer", "200", call_leg_id=john_leg, destination="210")
    assert answer.status_code == 202, answer.text
    incoming = jane.incoming_call()
    assert incoming["param"].startswith("sip:+3228992675@")  # the outside caller, shown
    jane.answer()
    jane.wait_event("CALL_ESTABLISHED")
    # The carrier's dialog is re-INVITEd with Jane's media (sendrecv: the scenario checks).
    jane_leg = server.wait_states("210", ["RINGING", "ACTIVE"])
    assert jane_leg == answer.json()["transfer_call_leg_id"]
    assert server.leg_for("210")["caller_number"] == "+3228992675"
    carrier.wait_received("INVITE")
    jane.hangup()
    assert carrier.wait(15) == 0, carrier.diagnostics()
    server.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(transferred)"])
    server.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(completed)"])


def test_blind_transfer_to_a_busy_extension_ends_the_transferred_partys_call_busy(
    server: RunningServer, make_sipp, jane, john, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    bob = sipp_phone(server, make_sipp, "220", "uas_busy.xml", tmp_path)
    jane_calls_john(server, jane)
    john_leg = server.wait_states("200", ["RINGING", "ACTIVE"])
    answer = command(server, "transfer", "200", call_leg_id=john_leg, destination="220")
    assert answer.status_code == 202, answer.text
    assert bob.wait(15) == 0, bob.diagnostics()
    # Nobody takes the call: Jane is hung up, and her leg says why.
    jane.wait_event("CALL_CLOSED")
    server.wait_states("210", ["RINGING", "ACTIVE", "RINGING", "HANGUP(busy)"])
    server.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(transferred)"])
    server.wait_states("220", ["RINGING", "HANGUP(busy)"])


def test_attended_transfer_joins_a_held_call_and_an_active_one(
    server: RunningServer, phone, jane, john  # type: ignore[no-untyped-def]
) -> None:
    bob = phone("220", "auto")
    jane.dial(dial_uri(server, "200"))
    john.wait_event("CALL_ESTABLISHED")
    wait_until(lambda: [leg["state"] for leg in legs_of(server, "210")] == ["ACTIVE"], 10)
    [first] = legs_of(server, "210")
    assert command(server, "hold", "210", call_leg_id=first["id"]).json()["state"] == "HELD"
    assert sdp_direction(john.wait_received("INVITE", count=2)[-1]) == "sendonly"

    jane.dial(dial_uri(server, "220"))
    bob.wait_event("CALL_ESTABLISHED")
    wait_until(lambda: len(legs_of(server, "210")) == 2
               and legs_of(server, "210")[1]["state"] == "ACTIVE", 10)
    second = legs_of(server, "210")[1]
    answer = command(server, "transfer", "210", call_leg_id=second["id"],
                     target_call_leg_id=first["id"])
    assert (answer.status_code, answer.json()) == (
        200, {"call_leg_id": second["id"], "state": "HANGUP"})

    # Jane's two calls are hung up; John and Bob get each other's media, both sendrecv.
    jane.wait_event("CALL_CLOSED")
    assert sdp_direction(john.wait_received("INVITE", count=3)[-1]) == "sendrecv"
    assert sdp_direction(bob.wait_received("INVITE", count=2)[-1]) == "sendrecv"
    john_leg = server.leg_for("200")["id"]
    bob_leg = server.leg_for("220")["id"]
    wait_leg_states(server, first["id"], ["RINGING", "ACTIVE", "HELD", "HANGUP(transferred)"])
    wait_leg_states(server, second["id"], ["RINGING", "ACTIVE", "HANGUP(transferred)"])
    wait_leg_states(server, john_leg, ["RINGING", "ACTIVE", "HELD", "ACTIVE"])
    wait_leg_states(server, bob_leg, ["RINGING", "ACTIVE", "ACTIVE"])
    assert server.leg_for("200")["caller_name"] == "Bob Roe"
    assert server.leg_for("220")["caller_name"] == "John Doe"

    john.hangup()
    bob.wait_event("CALL_CLOSED")
    wait_leg_states(server, john_leg, ["RINGING", "ACTIVE", "HELD", "ACTIVE",
                                       "HANGUP(completed)"])
    wait_leg_states(server, bob_leg, ["RINGING", "ACTIVE", "ACTIVE", "HANGUP(completed)"])


def test_a_phones_own_transfer_button_refer_is_a_blind_transfer(
    server: RunningServer, phone, jane, john  # type: ignore[no-untyped-def]
) -> None:
    bob = phone("220", "auto")
    jane_calls_john(server, jane)
    server.wait_states("200", ["RINGING", "ACTIVE"])
    # John's phone transfers (REFER to 220): it is hung up, Jane is connected to Bob.
    john.transfer(dial_uri(server, "220"))
    john.wait_event("CALL_CLOSED")
    incoming = bob.wait_event("CALL_ESTABLISHED")
    assert incoming.get("peerdisplayname") == "Jane Doe"
    assert sdp_direction(jane.wait_received("INVITE", count=1)[-1]) == "sendrecv"
    server.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(transferred)"])
    server.wait_states("210", ["RINGING", "ACTIVE", "RINGING", "ACTIVE"])
    server.wait_states("220", ["RINGING", "ACTIVE"])
    bob.hangup()
    jane.wait_event("CALL_CLOSED")
    server.wait_states("210", ["RINGING", "ACTIVE", "RINGING", "ACTIVE", "HANGUP(completed)"])
