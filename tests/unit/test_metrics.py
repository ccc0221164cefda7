"""What a SIP datagram counts as, in the metrics."""

from __future__ import annotations

import pytest

from hookswitch.metrics import sip_message


@pytest.mark.parametrize(("datagram", "label"), [
    (b"INVITE sip:200@pbx SIP/2.0\r\n", "INVITE"),
    (b"REGISTER sip:pbx SIP/2.0\r\n", "REGISTER"),
    (b"SIP/2.0 200 OK\r\n", "200"),
    (b"SIP/2.0 486 Busy Here\r\n", "486"),
    (b"SIP/2.0 OK\r\n", "other"),
    (b"FROBNICATE sip:x SIP/2.0\r\n", "other"),  # made-up methods do not grow the labels
    (b"\xff\xfe garbage", "other"),
    (b"", "other"),
])
def test_a_datagram_counts_by_its_method_or_status(datagram: bytes, label: str) -> None:
    assert sip_message(datagram) == label
