"""The benchmark's plain UDP socket phones: a thread that reads SIP messages off one
loopback port, timestamps each on arrival and hands it to the phone's ``handle``; and the
few RFC 3261 pieces they need (header parsing, a response built from a request's headers).

The phones register through sipp (``harness.sipp.register``, digest) from the same port
before they start, so hookswitch reaches them at that address.
"""

from __future__ import annotations

import re
import socket
import threading
import time

from harness.ports import HOST

# RFC 3261 7.3.3 compact forms of the headers the phones read
_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
            "c": "content-type", "l": "content-length"}
# Headers a response copies from its request (RFC 3261 8.2.6.2, 12.1.1), as written out
_COPIED = {"via": "Via", "record-route": "Record-Route", "from": "From", "to": "To",
           "call-id": "Call-ID", "cseq": "CSeq"}
_USER = re.compile(r"sip:([^@;>]+)@")


def headers(message: str) -> list[tuple[str, str]]:
    """The header fields of ``message`` in order, names lower-case and unabbreviated."""
    head = message.split("\r\n\r\n", 1)[0].split("\r\n")
    out = []
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            out.append((_COMPACT.get(key, key), value.strip()))
    return out


def header(message: str, name: str) -> str:
    """The first value of header ``name`` (lower-case, long form); '' when absent."""
    return next((value for key, value in headers(message) if key == name), "")


def body(message: str) -> str:
    return message.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in message else ""


def uri_user(value: str) -> str | None:
    """The user part of the first SIP URI in a header value (``sip:USER@...``)."""
    match = _USER.search(value)
    return match.group(1) if match else None


def response(request: str, status: str, tag: str, *, contact: str | None = None,
             sdp: str = "") -> bytes:
    """The response ``status`` (``"200 OK"``) to ``request``: Via, Record-Route, From,
    To (with ``tag`` added when it has none), Call-ID and CSeq copied (RFC 3261 8.2.6),
    then ``contact`` and the SDP body, if any."""
    lines = [f"SIP/2.0 {status}"]
    for name, value in headers(request):
        if name in _COPIED:
            if name == "to" and ";tag=" not in value:
                value += f";tag={tag}"
            lines.append(f"{_COPIED[name]}: {value}")
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if sdp:
        lines.append("Content-Type: application/sdp")
    lines += [f"Content-Length: {len(sdp.encode())}", "", sdp]
    return "\r\n".join(lines).encode()


class UdpPhone:
    """A UDP socket on 127.0.0.1:``port`` and the thread that serves it, until ``stop``."""

    name = "phone"

    def __init__(self, port: int) -> None:
        self.port = port
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((HOST, port))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        self._sock.sendto(data, to)

    def handle(self, message: str, source: tuple[str, int], arrival: float) -> None:
        """One message that arrived at ``arrival`` (``time.time()``); answer or ignore."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            arrival = time.time()
            self.handle(data.decode(errors="replace"), source, arrival)
