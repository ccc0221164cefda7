"""Checks on SIP text that need no sippy: numbers, addresses, datagrams, traces, log rate."""

from __future__ import annotations

import pytest

from hookswitch.sip.addresses import unusable_destination, valid_host
from hookswitch.sip.lograte import LogOncePerWindow
from hookswitch.sip.wire import (
    MAX_DELTA,
    MalformedNumber,
    datagram_refusal,
    redact_credentials,
    strict_number,
)


@pytest.mark.parametrize("text", ["-1", "+7", "1_000", "١٢", "", " ", "0x10", "1.5",
                                  "9" * 21])
def test_a_header_number_is_ascii_digits_only(text: str) -> None:
    with pytest.raises(MalformedNumber):
        strict_number(text, "Expires")


def test_a_big_header_number_is_clamped_or_refused() -> None:
    assert strict_number(" 3600 ", "Expires") == 3600
    assert strict_number(str(2**64), "Expires") == MAX_DELTA
    with pytest.raises(MalformedNumber):
        strict_number(str(2**31), "CSeq", 2**31 - 1, clamp=False)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "pbx.example.com.", "[::1]",
                                  "[2001:db8::10]", "a-b.c"])
def test_valid_hosts(host: str) -> None:
    assert valid_host(host)


@pytest.mark.parametrize("host", ["", "[::1", "[fe80::zz]", "999.1.1.1", "bad..host",
                                  "-x.com", "under_score.com", "a b", None, 5060])
def test_invalid_hosts(host: object) -> None:
    assert not valid_host(host)


@pytest.mark.parametrize("address", [("127.0.0.1", 0), ("127.0.0.1", 65536),
                                     ("localhost", 99999), ("127.0.0.1", "5060"),
                                     ("127.0.0.1", True), ("", 5060), ("bad..host", 5060),
                                     ("127.0.0.1",), "127.0.0.1:5060", None])
def test_unusable_destinations(address: object) -> None:
    assert unusable_destination(address) is not None


@pytest.mark.parametrize("address", [("127.0.0.1", 5060), ("localhost", 1),
                                     ("::1", 65535), ("[::1]", 5060)])
def test_usable_destinations(address: object) -> None:
    assert unusable_destination(address) is None


def test_datagrams_refused_before_parsing() -> None:
    head = b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n"
    assert datagram_refusal(head + b"\r\n") is None
    assert datagram_refusal(head + b"\r\n" + b"\x00\x01 binary body") is None
    assert datagram_refusal(head + b"To: a\x00b\r\n\r\n") is not None
    assert datagram_refusal(head + b"Call-ID: \x07\r\n\r\n") is not None
    assert datagram_refusal(head + b"X: " + b"a" * 8200 + b"\r\n\r\n") is not None


def test_traces_keep_the_scheme_and_user_of_credentials_only() -> None:
    trace = (
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        'Authorization: Digest username="210",realm="r",nonce="n0nce",uri="sip:a",'
        'response="0123abcd",qop=auth,nc=00000001,cnonce="c0"\r\n'
        'proxy-authorization: Digest realm="r", username="7", response="ffff"\r\n'
        "Authorization: Basic MjEwOnNlY3JldA==\r\n"
        'WWW-Authenticate: Digest realm="r",nonce="public"\r\n'
    )
    assert redact_credentials(trace) == (
        "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        'Authorization: Digest username="210", <redacted>\r\n'
        'proxy-authorization: Digest username="7", <redacted>\r\n'
        "Authorization: Basic <redacted>\r\n"
        'WWW-Authenticate: Digest realm="r",nonce="public"\r\n'
    )


def test_one_line_per_key_per_window_then_the_count_held_back() -> None:
    now = [0.0]
    lines: list[tuple[str, dict[str, object]]] = []
    once = LogOncePerWindow(lambda event, **fields: lines.append((event, fields)),
                            window=60, clock=lambda: now[0])
    assert once("a", "sip.x", n=1)
    assert not once("a", "sip.x", n=2)
    assert not once("a", "sip.x", n=3)
    assert once("b", "sip.x", n=4)
    now[0] = 61
    assert once("a", "sip.x", n=5)
    assert lines == [("sip.x", {"n": 1}), ("sip.x", {"n": 4}),
                     ("sip.x", {"n": 5, "held_back": 2})]
