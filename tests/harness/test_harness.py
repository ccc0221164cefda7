"""Self-test of the phone harness: phones talk to each other directly, no hookswitch."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from harness.baresip import Baresip, sdp_direction
from harness.fixtures import MakeBaresip, MakeSipp
from harness.ports import HOST, free_tcp_port, free_udp_port, free_udp_port_pair
from harness.siplog import parse_baresip_trace, parse_sipp_log
from harness.sipp import SippProcess, sipp_register
from harness.wait import wait_until

# Where registration would go; unused when register=False (nothing listens there).
NOWHERE = (HOST, 9)


def test_wait_until_returns_value_and_raises_with_message() -> None:
    values = iter([0, 0, 7])
    assert wait_until(lambda: next(values), timeout=1, interval=0.001) == 7
    with pytest.raises(AssertionError, match="never true"):
        wait_until(lambda: False, timeout=0.05, message="never true")


def test_ports_are_free_and_distinct() -> None:
    pair = free_udp_port_pair()
    others = {free_udp_port(), free_udp_port(), free_tcp_port()}
    assert pair not in others and pair + 1 not in others
    for port in (pair, pair + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, port))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, port))


def test_baresip_direct_call_auto_answer(make_baresip: MakeBaresip) -> None:
    alice = make_baresip("alice", "x", NOWHERE, register=False, display_name="Alice Doe")
    bob = make_baresip("bob", "x", NOWHERE, register=False, answermode="auto")

    alice.dial(bob.uri)
    out = alice.wait_event("CALL_ESTABLISHED")
    inc = bob.wait_event("CALL_ESTABLISHED")
    assert out["direction"] == "outgoing" and out["peeruri"] == bob.uri
    assert inc["direction"] == "incoming" and inc["peeruri"] == alice.aor
    assert out["id"] == inc["id"]  # the SIP Call-ID
    # auto answer: baresip 1.0 sends no CALL_INCOMING, the helper falls back
    assert not bob.find_events("CALL_INCOMING")
    assert bob.incoming_display_name() == "Alice Doe"

    # hold / resume: only SDP events, the direction is visible in the SIP trace
    mark = bob.mark()
    alice.hold()
    bob.wait_event("CALL_REMOTE_SDP", predicate=lambda e: e["param"] == "offer", after=mark)
    assert sdp_direction(bob.wait_received("INVITE", count=2)[-1]) == "sendonly"
    mark = bob.mark()
    alice.resume()
    bob.wait_event("CALL_REMOTE_SDP", predicate=lambda e: e["param"] == "offer", after=mark)
    assert sdp_direction(bob.wait_received("INVITE", count=3)[-1]) == "sendrecv"

    alice.hangup()
    assert alice.wait_event("CALL_CLOSED")["param"] == "Connection reset by user"
    assert bob.wait_event("CALL_CLOSED")["param"] == "Connection reset by peer"


def test_baresip_manual_answer_and_reject(make_baresip: MakeBaresip) -> None:
    alice = make_baresip("alice", "x", NOWHERE, register=False)
    bob = make_baresip("bob", "x", NOWHERE, register=False, answermode="manual")

    alice.dial(bob.uri)
    incoming = bob.wait_event("CALL_INCOMING")
    assert incoming["peeruri"] == alice.aor
    assert "peerdisplayname" not in incoming  # no display name in From
    alice.wait_event("CALL_RINGING")
    bob.answer()
    alice.wait_event("CALL_ESTABLISHED")
    bob.wait_event("CALL_ESTABLISHED")
    bob.hangup()
    alice.wait_event("CALL_CLOSED")

    # second call, rejected while ringing
    mark_a, mark_b = alice.mark(), bob.mark()
    alice.dial(bob.uri)
    bob.wait_event("CALL_INCOMING", after=mark_b)
    bob.hangup()
    closed = alice.wait_event("CALL_CLOSED", after=mark_a)
    assert closed["param"].startswith("486")


def test_baresip_registers_with_digest(tmp_path: Path, make_sipp: MakeSipp) -> None:
    port = free_udp_port()
    registrar = make_sipp(
        "uas_registrar.xml",
        local_port=port,
        remote=None,
        keys={"user": "201", "password": "s3cret"},
        timeout=10,
    )
    with Baresip(tmp_path, "201", "s3cret", (HOST, port), display_name="Two Oh One") as phone:
        event = phone.wait_registered()
        assert event["accountaor"] == f"sip:201@{HOST}:{port}"
        assert registrar.wait(5) == 0
        register = registrar.received("REGISTER")
        assert len(register) == 2 and "Authorization: Digest" in register[1]

        with pytest.raises(AssertionError):
            phone.wait_event("CALL_INCOMING", timeout=0.05)
        # stop() unregisters, the registrar is gone: it must still end the process
    assert not phone.running


def test_baresip_wrong_password_fails_registration(
    make_baresip: MakeBaresip, make_sipp: MakeSipp
) -> None:
    port = free_udp_port()
    make_sipp(
        "uas_registrar.xml",
        local_port=port,
        remote=None,
        keys={"user": "201", "password": "s3cret"},
        timeout=10,
    )
    phone = make_baresip("201", "wrong", (HOST, port))
    with pytest.raises(AssertionError, match="403"):
        phone.wait_registered()


def test_sipp_register_right_and_wrong_password(tmp_path: Path) -> None:
    for password, expected_ok in (("s3cret", True), ("wrong", False)):
        port = free_udp_port()
        with SippProcess(
            "uas_registrar.xml",
            local_port=port,
            remote=None,
            keys={"user": "201", "password": "s3cret"},
            workdir=tmp_path,
            timeout=10,
        ) as registrar:
            started = time.monotonic()
            code = sipp_register((HOST, port), "201", password, free_udp_port(), workdir=tmp_path)
            assert (code == 0) is expected_ok, registrar.diagnostics()
            assert time.monotonic() - started < 5
            assert registrar.wait(5) == 0


def test_sipp_uac_noauth_call_to_uas_answer(make_sipp: MakeSipp) -> None:
    uas_port = free_udp_port()
    uas = make_sipp("uas_answer.xml", local_port=uas_port, remote=None, timeout=10)
    uac = make_sipp(
        "uac_noauth_call.xml",
        local_port=free_udp_port(),
        remote=(HOST, uas_port),
        service="3228001122",
        keys={"caller": "+3228992675", "hold_ms": 200},
        timeout=10,
    )
    assert uac.wait() == 0, uac.diagnostics()
    assert uas.wait() == 0, uas.diagnostics()
    invite = uas.received("INVITE")
    assert len(invite) == 1
    assert "From: <sip:+3228992675@127.0.0.1:" in invite[0]
    assert invite[0].startswith(f"INVITE sip:3228001122@{HOST}:{uas_port} SIP/2.0")
    assert uac.final_code() == 200
    assert len(uas.received("BYE")) == 1 and len(uac.received(200)) == 2


def test_sipp_expect_fail_against_busy(make_sipp: MakeSipp) -> None:
    uas_port = free_udp_port()
    uas = make_sipp("uas_busy.xml", local_port=uas_port, remote=None, timeout=10)
    uac = make_sipp(
        "uac_expect_fail.xml",
        local_port=free_udp_port(),
        remote=(HOST, uas_port),
        service="200",
        timeout=10,
    )
    assert uac.wait() == 0, uac.diagnostics()
    assert uas.wait() == 0, uas.diagnostics()
    assert uac.final_code() == 486
    assert len(uac.received(486)) == 1 and uac.received("4xx") == uac.received("486")
    assert "SIP/2.0 486 Busy Here" in uac.messages()


def test_sipp_cancel_and_remote_bye(make_sipp: MakeSipp) -> None:
    ring_port, bye_port = free_udp_port(), free_udp_port()
    ringing = make_sipp("uas_ring_forever.xml", local_port=ring_port, remote=None, timeout=10)
    hanging = make_sipp(
        "uas_answer_then_bye.xml",
        local_port=bye_port,
        remote=None,
        keys={"hangup_after_ms": 100},
        timeout=10,
    )
    canceller = make_sipp(
        "uac_cancel.xml", local_port=free_udp_port(), remote=(HOST, ring_port), service="1"
    )
    waiter = make_sipp(
        "uac_call_remote_bye.xml", local_port=free_udp_port(), remote=(HOST, bye_port), service="2"
    )
    assert len(ringing.wait_received("CANCEL")) == 1
    for proc in (canceller, waiter, ringing, hanging):
        assert proc.wait() == 0, proc.diagnostics()
    assert canceller.final_code() == 487
    assert len(waiter.received("BYE")) == 1


def test_baresip_and_sipp_interoperate(make_baresip: MakeBaresip, make_sipp: MakeSipp) -> None:
    phone = make_baresip("300", "x", NOWHERE, register=False, answermode="auto")

    # a carrier-like sipp UAC calls the phone, which answers; sipp hangs up
    uac = make_sipp(
        "uac_noauth_call.xml",
        local_port=free_udp_port(),
        remote=(HOST, phone.port),
        service="300",
        keys={"caller": "+3228992675", "hold_ms": 300},
        timeout=10,
    )
    established = phone.wait_event("CALL_ESTABLISHED")
    assert established["peeruri"].startswith("sip:+3228992675@")
    assert phone.wait_event("CALL_CLOSED")["param"] == "Connection reset by peer"
    assert uac.wait() == 0, uac.diagnostics()

    # the phone calls a sipp UAS, holds, resumes and hangs up
    uas_port = free_udp_port()
    uas = make_sipp("uas_answer.xml", local_port=uas_port, remote=None, timeout=10)
    mark = phone.mark()
    phone.dial(f"sip:400@{HOST}:{uas_port}")
    phone.wait_event("CALL_ESTABLISHED", after=mark)
    for action in (phone.hold, phone.resume):
        before = phone.mark()
        action()
        phone.wait_event("CALL_REMOTE_SDP", after=before)
    phone.hangup()
    phone.wait_event("CALL_CLOSED", after=mark)
    assert uas.wait() == 0, uas.diagnostics()
    reinvites = uas.received("INVITE")[1:]
    assert [sdp_direction(m) for m in reinvites] == ["sendonly", "sendrecv"]


def test_processes_are_gone_after_context_exit(tmp_path: Path) -> None:
    with Baresip(tmp_path, "alice", "x", NOWHERE, register=False) as phone:
        assert phone.running
    assert not phone.running and phone.stop() is not None

    port = free_udp_port()
    with SippProcess("uas_answer.xml", local_port=port, remote=None, workdir=tmp_path) as uas:
        assert uas.poll() is None
    assert uas.poll() is not None
    # the port is free again
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, port))


def test_parse_sipp_log() -> None:
    sep = "-" * 47
    text = (
        f"{sep} 2026-01-01 00:00:00.000000\nUDP message sent (10 bytes):\n\n"
        "INVITE sip:1@h SIP/2.0\nCSeq: 1 INVITE\n\n\n"
        f"{sep} 2026-01-01 00:00:00.000001\nUDP message received [10] bytes :\n\n"
        "SIP/2.0 486 Busy Here\nCSeq: 1 INVITE\n\n\n"
        f"{sep} 2026-01-01 00:00:00.000002\nUnexpected UDP message received:\n\n"
        "BYE sip:1@h SIP/2.0\nCSeq: 2 BYE\n\n"
    )
    messages = parse_sipp_log(text)
    assert [(m.direction, m.first_line) for m in messages] == [
        ("sent", "INVITE sip:1@h SIP/2.0"),
        ("received", "SIP/2.0 486 Busy Here"),
        ("received", "BYE sip:1@h SIP/2.0"),
    ]
    assert messages[1].status == 486 and messages[1].cseq_method == "INVITE"
    assert messages[2].unexpected and messages[2].method == "BYE"
    assert messages[0].header("cseq") == "1 INVITE"


def test_parse_baresip_trace() -> None:
    # As baresip -s prints it: a coloured "#", "UDP src -> dst", the message, a colour reset.
    text = (
        "baresip is ready.\n"
        "\x1b[36;1m#\nUDP 127.0.0.1:5070 -> 127.0.0.1:6000\n"
        "INVITE sip:300@127.0.0.1:6000 SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n\x1b[;m\n"
        "ua: some other line\n"
        "\x1b[36;1m#\nUDP 127.0.0.1:6000 -> 127.0.0.1:5070\n"
        "SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\n\r\n\x1b[;m\n"
    )
    messages = parse_baresip_trace(text, own_port=6000)
    assert [(m.direction, m.first_line) for m in messages] == [
        ("received", "INVITE sip:300@127.0.0.1:6000 SIP/2.0"),
        ("sent", "SIP/2.0 180 Ringing"),
    ]
    assert "\r" not in messages[0].text and messages[1].is_kind("1xx")
