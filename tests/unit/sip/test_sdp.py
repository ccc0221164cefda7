"""The SDP the bridge reads and writes: holds, and the inactive answer of a click-to-dial."""

from __future__ import annotations

import pytest
from sippy.MsgBody import MsgBody

from hookswitch.sip.sdp import continue_origin, inactive_copy, sdp_holds, with_direction

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
       "m=video 4002 RTP/AVP 96\r\na=recvonly\r\n")


@pytest.mark.parametrize(("change", "holds"), [
    (("a=sendrecv", "a=sendonly"), True),
    (("a=sendrecv", "a=inactive"), True),
    (("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"), True),
    (("a=sendrecv", "a=recvonly"), False),
    (("x", "x"), False),
])
def test_what_counts_as_hold(change: tuple[str, str], holds: bool) -> None:
    assert sdp_holds(MsgBody(SDP.replace(*change))) is holds


def test_no_body_is_no_hold() -> None:
    assert sdp_holds(None) is False


def test_the_inactive_copy_has_one_inactive_line_per_stream_and_nothing_else_changes() -> None:
    copy = str(inactive_copy(MsgBody(SDP))).split("\r\n")
    assert copy.count("a=inactive") == 2
    assert not {"a=sendrecv", "a=recvonly"} & set(copy)
    assert [line for line in copy if line and line != "a=inactive"] == [
        line for line in SDP.split("\r\n") if line and line not in ("a=sendrecv", "a=recvonly")]


@pytest.mark.parametrize("direction", ["sendonly", "sendrecv", "inactive"])
def test_with_direction_sets_every_stream(direction: str) -> None:
    lines = str(with_direction(MsgBody(SDP), direction)).split("\r\n")
    assert [line for line in lines if line.startswith("a=") and "rtpmap" not in line] == [
        f"a={direction}", f"a={direction}"]


OTHER = SDP.replace("o=- 1 1 IN IP4 127.0.0.1", "o=bob 77 5 IN IP4 10.0.0.9").replace(
    "m=audio 4000", "m=audio 5000")


def test_another_phones_sdp_continues_the_session_this_peer_knows() -> None:
    """RFC 3264 8: same username, session id and address; the version one up."""
    sent = str(continue_origin(MsgBody(OTHER), MsgBody(SDP)))
    assert "o=- 1 2 IN IP4 127.0.0.1\r\n" in sent
    assert "m=audio 5000" in sent


def test_an_unchanged_sdp_keeps_its_version() -> None:
    again = SDP.replace("o=- 1 1", "o=bob 77 5")
    assert "o=- 1 1 IN IP4" in str(continue_origin(MsgBody(again), MsgBody(SDP)))


def test_the_same_phones_next_sdp_passes_unchanged() -> None:
    nxt = MsgBody(SDP.replace("o=- 1 1", "o=- 1 2").replace("a=sendrecv", "a=sendonly"))
    assert continue_origin(nxt, MsgBody(SDP)) is nxt
    assert continue_origin(nxt, None) is nxt
