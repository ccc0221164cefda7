"""Calls through the real server between real phones (baresip and sipp), on loopback.

Each test asserts what the phones saw and the state sequence recorded for every user leg.
"""

from __future__ import annotations

from pathlib import Path

from harness import free_udp_port, sdp_direction, sipp_register
from harness.server import PASSWORDS, RunningServer

ANSWERED = ["RINGING", "ACTIVE", "HANGUP(completed)"]


def dial_uri(server: RunningServer, target: str) -> str:
    return f"sip:{target}@127.0.0.1:{server.sip_port}"


def sipp_phone(server: RunningServer, make_sipp, extension: str, scenario: str,  # type: ignore[no-untyped-def]
               tmp_path: Path):
    """A sipp UAS registered as ``extension`` (register first, then serve on that port)."""
    port = free_udp_port()
    assert sipp_register(server.sip, extension, PASSWORDS[extension], port, workdir=tmp_path) == 0
    return make_sipp(scenario, local_port=port, remote=None)


def test_internal_call_is_answered_with_media_flowing_directly_and_caller_hangs_up(
    server: RunningServer, john, jane  # type: ignore[no-untyped-def]
) -> None:
    jane.dial(dial_uri(server, "200"))
    jane.wait_event("CALL_ESTABLISHED")
    john.wait_event("CALL_ESTABLISHED")
    # The SDP went through unchanged, so RTP flows phone to phone.
    jane.wait_event("CALL_RTPESTAB")
    john.wait_event("CALL_RTPESTAB")
    server.wait_states("210", ["RINGING", "ACTIVE"])
    jane.hangup()
    john.wait_event("CALL_CLOSED")
    caller_leg = server.wait_states("210", ANSWERED)
    callee_leg = server.wait_states("200", ANSWERED)
    assert caller_leg != callee_leg
    legs = {leg["extension"]: leg for leg in server.legs()}
    assert (legs["210"]["direction"], legs["200"]["direction"]) == ("out", "in")
    assert legs["200"]["call_id"] == legs["210"]["call_id"]
    assert (legs["200"]["caller_name"], legs["200"]["callee_name"]) == ("Jane Doe", "John Doe")


def test_callee_hangs_up(server: RunningServer, john, jane) -> None:  # type: ignore[no-untyped-def]
    jane.dial(dial_uri(server, "200"))
    john.wait_event("CALL_ESTABLISHED")
    server.wait_states("200", ["RINGING", "ACTIVE"])
    john.hangup()
    jane.wait_event("CALL_CLOSED")
    server.wait_states("210", ANSWERED)
    server.wait_states("200", ANSWERED)


def test_hold_and_resume_from_baresip_in_both_directions(
    server: RunningServer, john, jane  # type: ignore[no-untyped-def]
) -> None:
    jane.dial(dial_uri(server, "200"))
    jane.wait_event("CALL_ESTABLISHED")
    server.wait_states("200", ["RINGING", "ACTIVE"])
    jane.hold()
    server.wait_states("200", ["RINGING", "ACTIVE", "HELD"])
    assert sdp_direction(john.wait_received("INVITE", count=2)[-1]) == "sendonly"
    jane.resume()
    server.wait_states("200", ["RINGING", "ACTIVE", "HELD", "ACTIVE"])
    john.hold()
    server.wait_states("210", ["RINGING", "ACTIVE", "HELD", "ACTIVE", "HELD"])
    john.resume()
    server.wait_states("210", ["RINGING", "ACTIVE", "HELD", "ACTIVE", "HELD", "ACTIVE"])
    jane.hangup()
    server.wait_states("200", ["RINGING", "ACTIVE", "HELD", "ACTIVE", "HELD", "ACTIVE",
                               "HANGUP(completed)"])


def test_caller_cancels_while_ringing(
    server: RunningServer, phone, make_sipp  # type: ignore[no-untyped-def]
) -> None:
    john = phone("200")
    caller = make_sipp("uac_cancel.xml", local_port=free_udp_port(), remote=server.sip,
                       service="200", auth=("210", PASSWORDS["210"]))
    john.incoming_call()
    assert caller.wait(15) == 0, caller.diagnostics()
    john.wait_event("CALL_CLOSED")
    server.wait_states("210", ["RINGING", "HANGUP(cancelled)"])
    server.wait_states("200", ["RINGING", "HANGUP(cancelled)"])


def test_busy_callee_ends_the_call_busy(
    server: RunningServer, make_sipp, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    sipp_phone(server, make_sipp, "200", "uas_busy.xml", tmp_path)
    caller = make_sipp("uac_expect_fail.xml", local_port=free_udp_port(), remote=server.sip,
                       service="200", auth=("210", PASSWORDS["210"]))
    assert caller.wait(15) == 0, caller.diagnostics()
    assert caller.final_code() == 486
    server.wait_states("210", ["RINGING", "HANGUP(busy)"])
    server.wait_states("200", ["RINGING", "HANGUP(busy)"])


def test_no_answer_ends_after_the_ring_timeout(
    server_factory, make_sipp, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    server = server_factory(ring_timeout=2)
    callee = sipp_phone(server, make_sipp, "200", "uas_ring_forever.xml", tmp_path)
    caller = make_sipp("uac_expect_fail.xml", local_port=free_udp_port(), remote=server.sip,
                       service="200", auth=("210", PASSWORDS["210"]))
    assert caller.wait(15) == 0, caller.diagnostics()
    assert caller.final_code() == 480
    callee.wait_received("CANCEL", timeout=5)
    server.wait_states("210", ["RINGING", "HANGUP(no-answer)"])
    server.wait_states("200", ["RINGING", "HANGUP(no-answer)"])


def test_unregistered_extension_gets_480_and_no_leg_for_the_callee(
    server: RunningServer, make_sipp  # type: ignore[no-untyped-def]
) -> None:
    caller = make_sipp("uac_expect_fail.xml", local_port=free_udp_port(), remote=server.sip,
                       service="220", auth=("210", PASSWORDS["210"]))
    assert caller.wait(15) == 0, caller.diagnostics()
    assert caller.final_code() == 480
    server.wait_states("210", ["RINGING", "HANGUP(unavailable)"])
    assert [leg["extension"] for leg in server.legs()] == ["210"]


def test_another_tenants_extension_cannot_be_reached(
    server: RunningServer, make_sipp  # type: ignore[no-untyped-def]
) -> None:
    # 300 exists, but in the tenant of "other.test": from 210's tenant it is unknown.
    caller = make_sipp("uac_expect_fail.xml", local_port=free_udp_port(), remote=server.sip,
                       service="300", auth=("210", PASSWORDS["210"]))
    assert caller.wait(15) == 0, caller.diagnostics()
    assert caller.final_code() == 404
    assert server.legs() == []


def test_unauthenticated_invite_is_challenged_and_wrong_credentials_refused(
    server: RunningServer, make_sipp  # type: ignore[no-untyped-def]
) -> None:
    caller = make_sipp("uac_expect_fail.xml", local_port=free_udp_port(), remote=server.sip,
                       service="200", auth=("210", "wrong-password"))
    assert caller.wait(15) == 0, caller.diagnostics()
    assert caller.final_code() == 403
    assert caller.received(401)
    assert server.legs() == []


def test_two_devices_ring_at_once_and_the_loser_is_cancelled(
    server: RunningServer, phone, jane  # type: ignore[no-untyped-def]
) -> None:
    desk = phone("200")
    mobile = phone("200")
    jane.dial(dial_uri(server, "200"))
    desk.incoming_call()
    incoming = mobile.incoming_call()
    assert incoming.get("peerdisplayname") == "Jane Doe"
    mobile.answer()
    jane.wait_event("CALL_ESTABLISHED")
    desk.wait_received("CANCEL")
    desk.wait_event("CALL_CLOSED")
    server.wait_states("200", ["RINGING", "ACTIVE"])
    jane.hangup()
    mobile.wait_event("CALL_CLOSED")
    server.wait_states("200", ANSWERED)
    assert len(server.legs()) == 2  # one leg per user, not per device


def test_outbound_call_to_a_number_goes_to_the_trunk_carrier(
    server: RunningServer, make_sipp, jane  # type: ignore[no-untyped-def]
) -> None:
    carrier = make_sipp("uas_answer.xml", local_port=server.trunk_port, remote=None)
    jane.dial(dial_uri(server, "+32470123456"))
    jane.wait_event("CALL_ESTABLISHED")
    [invite] = carrier.received("INVITE")
    assert invite.startswith("INVITE sip:+32470123456@")
    assert "+3228990210" in next(line for line in invite.splitlines()
                                 if line.lower().startswith("from:"))
    jane.hangup()
    carrier.wait_received("BYE")
    server.wait_states("210", ANSWERED)
    assert server.leg_for("210")["callee_number"] == "+32470123456"


def test_inbound_call_from_the_trunk_rings_the_user_of_that_number(
    server: RunningServer, make_sipp, john  # type: ignore[no-untyped-def]
) -> None:
    carrier = make_sipp("uac_noauth_call.xml", local_port=server.trunk_port, remote=server.sip,
                        service="+3228990200", keys={"caller": "+3228992675"})
    john.wait_event("CALL_ESTABLISHED")
    assert carrier.wait(15) == 0, carrier.diagnostics()
    server.wait_states("200", ANSWERED)
    leg = server.leg_for("200")
    assert (leg["direction"], leg["caller_number"], leg["caller_name"]) == (
        "in", "+3228992675", "+3228992675")
    assert len(server.legs()) == 1  # the carrier's side has no leg


def test_sigterm_sends_bye_to_both_phones_and_ends_the_legs(
    server: RunningServer, john, jane  # type: ignore[no-untyped-def]
) -> None:
    jane.dial(dial_uri(server, "200"))
    john.wait_event("CALL_ESTABLISHED")
    server.wait_states("210", ["RINGING", "ACTIVE"])
    assert server.stop() == 0
    jane.wait_event("CALL_CLOSED")
    john.wait_event("CALL_CLOSED")
    assert server.states(server.leg_for("210")["id"])[-1] == "HANGUP(failed)"


def test_legs_left_open_by_a_crash_are_closed_failed_at_start(
    server: RunningServer, john, jane  # type: ignore[no-untyped-def]
) -> None:
    import signal

    jane.dial(dial_uri(server, "200"))
    john.wait_event("CALL_ESTABLISHED")
    server.wait_states("200", ["RINGING", "ACTIVE"])
    server.stop(signal.SIGKILL)
    server.start()
    server.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(failed)"])
    server.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(failed)"])
