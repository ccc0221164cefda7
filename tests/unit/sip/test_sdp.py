"""The SDP the bridge reads and writes: holds, and the inactive answer of a click-to-dial."""

from __future__ import annotations

import pytest
from sippy.MsgBody import MsgBody

from hookswitch.sip.sdp import inactive_copy, sdp_holds

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
