"""Who a request came from behind the edge, and the Path a REGISTER brings (sip/edge.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sippy.SipRequest import SipRequest

from hookswitch.sip.edge import first_hop, path_of, source_of
from hookswitch.sip.validate import Refuse, check_request

EDGE = ("127.0.0.1", 5060)
PHONE = ("127.0.0.2", 4000)


def request(source: tuple[str, int], *headers: str) -> Any:
    raw = "\r\n".join((
        "REGISTER sip:127.0.0.1:5060 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1",
        "From: <sip:200@example.test>;tag=1",
        "To: <sip:200@example.test>",
        "Call-ID: a",
        "CSeq: 1 REGISTER",
        *headers,
        "Content-Length: 0",
        "", "",
    ))
    req = SipRequest(raw)
    req.source = (source, "udp")  # what sippy's setSource stores
    return req


def test_the_edge_vouches_for_the_phone_address() -> None:
    req = request(EDGE, "X-Hookswitch-Source: 127.0.0.2:4000")
    assert source_of(req, EDGE) == PHONE


@pytest.mark.parametrize("edge", [None, ("127.0.0.9", 5060), ("127.0.0.1", 5061)])
def test_the_header_from_anyone_but_the_edge_is_not_believed(
    edge: tuple[str, int] | None,
) -> None:
    req = request(EDGE, "X-Hookswitch-Source: 10.9.9.9:5060")
    assert source_of(req, edge) == EDGE


@pytest.mark.parametrize("value", ["nonsense", "127.0.0.2:0", "127.0.0.2:99999", ":5060",
                                   "999.1.1.1:5060"])
def test_a_bad_vouched_address_falls_back_to_the_datagram(value: str) -> None:
    assert source_of(request(EDGE, f"X-Hookswitch-Source: {value}"), EDGE) == EDGE


def test_without_the_header_the_datagram_source_counts() -> None:
    assert source_of(request(PHONE), EDGE) == PHONE


def test_the_path_keeps_its_order_and_its_first_uri_is_the_next_hop() -> None:
    req = request(EDGE, "Path: <sip:127.0.0.1:5070;lr;received=sip:127.0.0.2:4000>, "
                        "<sip:10.0.0.1;lr>", "Path: <sip:10.0.0.2:5080;lr>")
    path = path_of(req, EDGE)
    assert [hop.split(";")[0] for hop in path] == [
        "<sip:127.0.0.1:5070", "<sip:10.0.0.1", "<sip:10.0.0.2:5080"]
    assert "received=" in path[0]
    assert first_hop(path) == ("127.0.0.1", 5070)
    assert first_hop(path[1:]) == ("10.0.0.1", 5060)
    assert path_of(request(EDGE), EDGE) == ()


@pytest.mark.parametrize("edge", [None, ("127.0.0.9", 5060)])
def test_a_path_from_anyone_but_the_edge_is_ignored(edge: tuple[str, int] | None) -> None:
    assert path_of(request(EDGE, "Path: <sip:203.0.113.7:5060;lr>"), edge) == ()


@pytest.mark.parametrize("path", ["garbage", "<http://127.0.0.1;lr>", "<sip:127.0.0.1:0;lr>"])
def test_a_register_with_a_bad_path_is_refused(path: str) -> None:
    assert check_request(request(EDGE, f"Path: {path}")) == Refuse(
        400, "Bad Path: a sip or sips URI with a host and port expected")


def test_a_register_with_a_good_path_passes() -> None:
    assert check_request(request(EDGE, "Path: <sip:127.0.0.1:5070;lr>")) is None
