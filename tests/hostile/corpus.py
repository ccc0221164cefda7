"""Malformed and hostile SIP datagrams, each with the answer a server must give.

Every datagram is built for the port of the socket that sends it (its Via points there),
with a fresh branch, tag and Call-ID, so datagrams never match each other's transactions.
``expect`` is the status of the first final answer, or ``DROPPED`` when nothing must
come back (the message cannot be answered: no Via to answer to, no Call-ID to match...).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

DROPPED = None
AUTHORIZATION_VARIANTS = {
    "digest-alone": "Digest",
    "digest-only-commas": "Digest ,,,,",
    "basic": "Basic MjAwOnBhc3MtMjAwLWpvaG4=",
    "digest-without-response": 'Digest username="200", realm="x"',
    "digest-unquoted-garbage": "Digest username=, nonce, ===",
}
BAD_CONTACTS = {
    "contact-tel": "<tel:+3228990200>",
    "contact-http": "<http://127.0.0.1/register>",
    "contact-garbage": "garbage",
    "contact-port-0": "<sip:200@127.0.0.1:0>",
    "contact-port-99999": "<sip:200@127.0.0.1:99999>",
    "contact-port-65536": "<sip:200@127.0.0.1:65536>",
    "contact-empty-host": "<sip:200@>",
    "contact-ipv6-garbage": "<sip:200@[::1>",
    "contact-ipv6-not-hex": "<sip:200@[fe80::zz]:5060>",
}


@dataclass(frozen=True)
class Datagram:
    name: str
    build: Callable[[int], bytes]  # the sender's port -> the bytes to send
    expect: int | None  # status of the first final answer, or DROPPED


def request(
    method: str = "OPTIONS",
    *,
    uri: str = "sip:127.0.0.1",
    version: str = "SIP/2.0",
    user: str = "probe",
    via: str = "SIP/2.0/UDP 127.0.0.1:{port};branch={branch}",
    replace: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    body: str = "",
    content_length: str | None = None,
    to_tag: str = "",
) -> Callable[[int], bytes]:
    """A request builder: a well-formed request, then headers replaced, dropped or added.

    ``{port}`` and ``{branch}`` in any value are filled in when the datagram is built.
    """

    def build(port: int) -> bytes:
        headers = {
            "Via": via,
            "From": f"<sip:{user}@127.0.0.1>;tag={uuid.uuid4().hex[:8]}",
            "To": f"<sip:{user}@127.0.0.1>{to_tag}",
            "Call-ID": uuid.uuid4().hex,
            "CSeq": f"1 {method}",
            "Max-Forwards": "70",
            **(replace or {}),
        }
        lines = [f"{method} {uri} {version}"]
        lines += [f"{name}: {value}" for name, value in headers.items() if name not in drop]
        lines += list(extra)
        length = str(len(body.encode())) if content_length is None else content_length
        lines.append(f"Content-Length: {length}")
        text = "\r\n".join(lines) + "\r\n\r\n" + body
        return fill(text, port).encode()

    return build


def fill(text: str, port: int) -> str:
    return text.replace("{port}", str(port)).replace(
        "{branch}", f"z9hG4bK{uuid.uuid4().hex}"
    )


def raw(data: bytes) -> Callable[[int], bytes]:
    return lambda port: fill(data.decode("latin-1"), port).encode("latin-1")


def truncated(at: int) -> Callable[[int], bytes]:
    whole = request("OPTIONS")
    return lambda port: whole(port)[:at]


def _response(status: str) -> Callable[[int], bytes]:
    return raw(
        f"SIP/2.0 {status}\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n"
        "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:probe@127.0.0.1>;tag=2\r\n"
        f"Call-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode()
    )


def _big(size: int) -> Callable[[int], bytes]:
    head = request("OPTIONS", extra=("X-Padding: " + "a" * size,))
    return lambda port: head(port)[:size]


SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"

CORPUS: list[Datagram] = [
    # --- broken framing ------------------------------------------------------------------
    Datagram("truncated-in-start-line", truncated(20), DROPPED),
    Datagram("truncated-in-via", truncated(60), DROPPED),
    Datagram("truncated-in-to", truncated(150), DROPPED),
    Datagram("only-a-start-line", raw(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n\r\n" + b" " * 8),
             DROPPED),
    Datagram("binary-noise", raw(bytes(range(256))), DROPPED),
    Datagram("http-request", raw(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: x\r\n\r\n"),
             DROPPED),
    Datagram("start-line-with-four-words",
             request(uri="sip:127.0.0.1 extra"), DROPPED),
    Datagram("request-uri-tel", request(uri="tel:+3228990200"), DROPPED),
    Datagram("request-uri-empty-host", request(uri="sip:"), DROPPED),
    # --- each mandatory header missing ---------------------------------------------------
    Datagram("missing-via", request(drop=("Via",)), DROPPED),
    Datagram("missing-from", request(drop=("From",)), DROPPED),
    Datagram("missing-to", request(drop=("To",)), DROPPED),
    Datagram("missing-call-id", request(drop=("Call-ID",)), DROPPED),
    Datagram("missing-cseq", request(drop=("CSeq",)), DROPPED),
    # RFC 3261 makes the client send Max-Forwards but does not make a UAS refuse without.
    Datagram("missing-max-forwards", request(drop=("Max-Forwards",)), 200),
    # --- bad values ----------------------------------------------------------------------
    Datagram("cseq-not-a-number", request(replace={"CSeq": "one OPTIONS"}), DROPPED),
    Datagram("cseq-method-mismatch", request(replace={"CSeq": "1 INVITE"}), 400),
    Datagram("cseq-too-big", request(replace={"CSeq": f"{2**31} OPTIONS"}), DROPPED),
    Datagram("cseq-negative", request(replace={"CSeq": "-1 OPTIONS"}), DROPPED),
    Datagram("from-not-an-address", request(replace={"From": "<:::>;tag=1"}), DROPPED),
    Datagram("to-tel-uri", request(replace={"To": "<tel:+3228990200>"}), DROPPED),
    Datagram("to-http-uri", request(replace={"To": "<http://127.0.0.1/>"}), DROPPED),
    Datagram("content-length-too-big", request(body="0123456789", content_length="500"), 400),
    Datagram("content-length-too-small", request(body="0123456789", content_length="2"), 200),
    Datagram("content-length-not-a-number", request(content_length="ten"), 400),
    Datagram("content-length-negative", request(body="0123456789", content_length="-5"),
             400),
    Datagram("nul-in-header", request(replace={"To": "<sip:pro\x00be@127.0.0.1>"}), DROPPED),
    Datagram("control-character-in-header",
             request(replace={"Call-ID": "abc\x07def"}), DROPPED),
    Datagram("invalid-utf8", raw(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
                                 b"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n"
                                 b"From: <sip:\xff\xfe@127.0.0.1>;tag=1\r\n"
                                 b"To: <sip:probe@127.0.0.1>\r\nCall-ID: utf8\r\n"
                                 b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"), DROPPED),
    Datagram("nul-in-body", request(body="v=0\r\n\x00\r\n"), 200),
    Datagram("invalid-utf8-in-body",
             raw(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
                 b"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\r\n"
                 b"From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:probe@127.0.0.1>\r\n"
                 b"Call-ID: utf8-body\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\n"
                 b"\xff\xfe\xfd\xfc"), DROPPED),
    # 8 KB is what sippy reads; anything longer arrived cut and must not be half-read.
    Datagram("datagram-of-64-kb", _big(64 * 1024 - 100), DROPPED),
    Datagram("datagram-just-over-8-kb", _big(8 * 1024 + 1), DROPPED),
    Datagram("header-folding", request(replace={"To": "\r\n  <sip:probe@127.0.0.1>"}), 200),
    Datagram("header-folding-with-tab",
             request(replace={"Subject": "first\r\n\tsecond"}), 200),
    Datagram("header-without-colon", request(extra=("NoColonHere",)), DROPPED),
    # --- methods, versions, dialogs ------------------------------------------------------
    Datagram("unknown-method", request("FOOBAR"), 501),
    Datagram("sip-version-3", request(version="SIP/3.0"), 505),
    Datagram("sip-version-1", request(version="SIP/1.0"), 505),
    Datagram("stray-response", _response("200 OK"), DROPPED),
    Datagram("stray-response-absurd-status", _response("999999 Absurd"), DROPPED),
    Datagram("stray-ack", request("ACK"), DROPPED),
    Datagram("stray-cancel", request("CANCEL"), 481),
    Datagram("bye-for-unknown-dialog", request("BYE", to_tag=";tag=zz"), 481),
    Datagram("reinvite-for-unknown-dialog",
             request("INVITE", user="200", to_tag=";tag=zz", body=SDP,
                     extra=("Content-Type: application/sdp",
                            "Contact: <sip:200@127.0.0.1:{port}>")), 481),
    # --- Expires and Max-Forwards --------------------------------------------------------
    Datagram("register-expires-negative",
             request("REGISTER", user="200", replace={"Expires": "-1"},
                     extra=("Contact: <sip:200@127.0.0.1:{port}>",)), 400),
    Datagram("register-expires-2-to-the-64",
             request("REGISTER", user="200", replace={"Expires": str(2**64)},
                     extra=("Contact: <sip:200@127.0.0.1:{port}>",)), 401),
    Datagram("register-expires-not-a-number",
             request("REGISTER", user="200", replace={"Expires": "soon"},
                     extra=("Contact: <sip:200@127.0.0.1:{port}>",)), 400),
    Datagram("register-contact-expires-negative",
             request("REGISTER", user="200",
                     extra=("Contact: <sip:200@127.0.0.1:{port}>;expires=-5",)), 400),
    Datagram("invite-expires-2-to-the-64",
             request("INVITE", user="200", replace={"Expires": str(2**64)}, body=SDP,
                     extra=("Content-Type: application/sdp",
                            "Contact: <sip:200@127.0.0.1:{port}>")), 401),
    Datagram("invite-expires-negative",
             request("INVITE", user="200", replace={"Expires": "-1"}, body=SDP,
                     extra=("Content-Type: application/sdp",
                            "Contact: <sip:200@127.0.0.1:{port}>")), 400),
    Datagram("max-forwards-zero-options", request(replace={"Max-Forwards": "0"}), 200),
    Datagram("max-forwards-zero-invite",
             request("INVITE", user="200", replace={"Max-Forwards": "0"}, body=SDP,
                     extra=("Content-Type: application/sdp",
                            "Contact: <sip:200@127.0.0.1:{port}>")), 483),
    Datagram("max-forwards-not-a-number", request(replace={"Max-Forwards": "many"}), 400),
    Datagram("max-forwards-negative", request(replace={"Max-Forwards": "-1"}), 400),
    # --- where answers go: bad ports and hosts in Via ------------------------------------
    Datagram("via-port-0", request(via="SIP/2.0/UDP 127.0.0.1:0;branch={branch}"), DROPPED),
    Datagram("via-port-65536",
             request(via="SIP/2.0/UDP 127.0.0.1:65536;branch={branch}"), DROPPED),
    # The datagram that killed sippy's sender thread (issue 9, item 1).
    Datagram("via-port-99999-received-hostname",
             request(via="SIP/2.0/UDP 127.0.0.1:99999;received=localhost;branch={branch}"),
             DROPPED),
    # rport is overwritten with the port the datagram came from (RFC 3581): answered.
    Datagram("via-rport-not-a-number",
             request(via="SIP/2.0/UDP 127.0.0.1:{port};rport=abc;branch={branch}"), 200),
    Datagram("via-rport-99999",
             request(via="SIP/2.0/UDP 127.0.0.1:{port};rport=99999;branch={branch}"), 200),
    Datagram("via-received-empty",
             request(via="SIP/2.0/UDP 127.0.0.1:{port};received=;branch={branch}"), DROPPED),
    # Not a name the resolver can even be asked about (an empty label): no DNS query
    # leaves the machine, the test stays on loopback.
    Datagram("via-received-unresolvable",
             request(via="SIP/2.0/UDP 127.0.0.1:{port};received=bad..host;branch={branch}"),
             DROPPED),
    Datagram("via-port-not-a-number",
             request(via="SIP/2.0/UDP 127.0.0.1:http;branch={branch}"), DROPPED),
    Datagram("via-ipv6-garbage", request(via="SIP/2.0/UDP [::1:{port};branch={branch}"),
             DROPPED),
    # sippy answers to the source address (it adds received=) when the Via host is not
    # the source: these can be answered, and are refused as malformed.
    Datagram("via-empty-host", request(via="SIP/2.0/UDP :{port};branch={branch}"), 400),
    Datagram("via-ipv6-not-hex",
             request(via="SIP/2.0/UDP [fe80::zz]:{port};branch={branch}"), 400),
    Datagram("via-hostname", request(via="SIP/2.0/UDP localhost:{port};branch={branch}"),
             200),
    # --- bad Contacts (refused before any authentication) --------------------------------
    *(
        Datagram(f"register-{name}",
                 request("REGISTER", user="200", extra=(f"Contact: {contact}",)), 400)
        for name, contact in BAD_CONTACTS.items()
    ),
    Datagram("invite-contact-port-99999",
             request("INVITE", user="200", body=SDP,
                     extra=("Content-Type: application/sdp",
                            "Contact: <sip:200@127.0.0.1:99999>")), 400),
    # --- Authorization that is not a usable Digest answer: the same 403 as a bad password
    *(
        Datagram(f"register-authorization-{name}",
                 request("REGISTER", user="200",
                         extra=("Contact: <sip:200@127.0.0.1:{port}>",
                                f"Authorization: {value}")), 403)
        for name, value in AUTHORIZATION_VARIANTS.items()
    ),
    Datagram("register-authorization-bogus-nonce",
             request("REGISTER", user="200",
                     extra=("Contact: <sip:200@127.0.0.1:{port}>",
                            'Authorization: Digest username="200", realm="x", '
                            'nonce="bogus", uri="sip:127.0.0.1", '
                            'response="00000000000000000000000000000000"')), 401),
]
