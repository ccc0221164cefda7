"""kill -9 in the middle of calls: after the restart the phones (and the trunk) are told.

The server saves the dialogs of every answered call; the next start sends BYE to both sides
of each, and ends their legs ``failed`` exactly once.
"""

from __future__ import annotations

import signal

from harness.server import RunningServer
from harness.wait import wait_until

FAILED = ["RINGING", "ACTIVE", "HANGUP(failed)"]


def saved_dialogs(server: RunningServer) -> int:
    return len(server.query("SELECT id FROM dialogs"))


def crash_and_restart(server: RunningServer, dialogs: int) -> None:
    # The dialogs are written just after the answer: wait until they are, then crash.
    wait_until(lambda: saved_dialogs(server) == dialogs, 10,
               message=f"expected {dialogs} saved dialogs, saw {saved_dialogs(server)}")
    server.stop(signal.SIGKILL)
    server.start()


def test_both_phones_get_bye_after_a_crash_and_each_leg_ends_failed_once(
    server: RunningServer, jane, john  # type: ignore[no-untyped-def]
) -> None:
    jane.dial(f"sip:200@127.0.0.1:{server.sip_port}")
    jane.wait_event("CALL_ESTABLISHED")
    john.wait_event("CALL_ESTABLISHED")
    server.wait_states("210", ["RINGING", "ACTIVE"])
    server.wait_states("200", ["RINGING", "ACTIVE"])
    crash_and_restart(server, dialogs=2)
    jane.wait_event("CALL_CLOSED")
    john.wait_event("CALL_CLOSED")
    server.wait_states("210", FAILED)
    server.wait_states("200", FAILED)
    assert saved_dialogs(server) == 0
    assert "sip.ended_dialogs_left_by_a_crash" in server.log


def test_a_held_call_is_ended_too_after_its_re_invites(
    server: RunningServer, jane, john  # type: ignore[no-untyped-def]
) -> None:
    # Hold and resume use up CSeq numbers of the dialogs; the BYE must still be accepted.
    jane.dial(f"sip:200@127.0.0.1:{server.sip_port}")
    jane.wait_event("CALL_ESTABLISHED")
    server.wait_states("210", ["RINGING", "ACTIVE"])
    jane.hold()
    server.wait_states("210", ["RINGING", "ACTIVE", "HELD"])
    jane.resume()
    server.wait_states("210", ["RINGING", "ACTIVE", "HELD", "ACTIVE"])
    crash_and_restart(server, dialogs=2)
    jane.wait_event("CALL_CLOSED")
    john.wait_event("CALL_CLOSED")
    for phone in (jane, john):  # each accepted the BYE: 200, not 500 (CSeq too low) or 481
        [bye] = phone.received("BYE")
        cseq = next(line for line in bye.splitlines() if line.lower().startswith("cseq"))
        assert any(cseq in answer for answer in phone.sent(200)), phone.sent("2xx")


def test_a_trunk_call_is_ended_at_the_carrier_after_a_crash(
    server: RunningServer, make_sipp, jane  # type: ignore[no-untyped-def]
) -> None:
    carrier = make_sipp("uas_answer.xml", local_port=server.trunk_port, remote=None)
    jane.dial(f"sip:+32470123456@127.0.0.1:{server.sip_port}")
    jane.wait_event("CALL_ESTABLISHED")
    crash_and_restart(server, dialogs=2)
    carrier.wait_received("BYE")
    assert carrier.wait(15) == 0, carrier.diagnostics()  # it answered the BYE 200
    jane.wait_event("CALL_CLOSED")
    server.wait_states("210", FAILED)
