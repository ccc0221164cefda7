"""Raw UDP exchanges with the server, synchronised by the server's own ordering.

sippy reads one socket with one receiver thread and handles datagrams one by one on the
SIP thread, so when two datagrams come from one socket the answer to the first (if any)
leaves before the answer to the second. ``exchange`` sends the datagram under test and then
an OPTIONS probe: once the probe is answered, a datagram that got no answer was dropped.
No sleeping, no guessing how long "no answer" takes.
"""

from __future__ import annotations

import hashlib
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tests.hostile.corpus import request

PROBE = (
    "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch}\r\n"
    "From: <sip:probe@127.0.0.1>;tag=probe\r\n"
    "To: <sip:127.0.0.1>\r\n"
    "Call-ID: {call_id}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)
_CALL_ID = re.compile(r"^(?:Call-ID|i)\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


def status_of(answer: str | None) -> int | None:
    if answer is None:
        return None
    match = re.match(r"SIP/2\.0 (\d{3}) ", answer)
    return int(match.group(1)) if match else -1


def header_names(answer: str) -> list[str]:
    head = answer.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    return sorted(line.split(":", 1)[0].strip().lower() for line in head)


def header(answer: str, name: str) -> str | None:
    match = re.search(rf"^{re.escape(name)}\s*:\s*(.*)$", answer, re.IGNORECASE | re.MULTILINE)
    return match.group(1).strip() if match else None


def probe(port: int) -> tuple[str, bytes]:
    call_id = f"probe-{uuid.uuid4().hex}"
    text = PROBE.format(port=port, branch=uuid.uuid4().hex, call_id=call_id)
    return call_id, text.encode()


def exchange(
    server: tuple[str, int],
    build: Callable[[int], bytes],
    *,
    expect_answer: bool,
    timeout: float = 10.0,
) -> str | None:
    """Send ``build(port)`` then a probe from one socket; return the datagram's first final
    answer, or None if the probe was answered first and ``expect_answer`` is false.

    With ``expect_answer`` the wait goes on after the probe's answer (an answer may be
    delayed on purpose, by the tarpit) until ``timeout``.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        probe_id, probe_bytes = probe(port)
        sock.sendto(build(port), server)
        sock.sendto(probe_bytes, server)
        deadline = time.monotonic() + timeout
        probe_answered = False
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                answer = sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                break
            if answer.startswith("SIP/2.0 1"):
                continue  # provisional
            match = _CALL_ID.search(answer)
            if match and match.group(1) == probe_id:
                probe_answered = True
                if not expect_answer:
                    return None
                continue
            return answer
        if not probe_answered:
            raise AssertionError("the server answered neither the datagram nor the probe")
        return None


def send_only(server: tuple[str, int], build: Callable[[int], bytes]) -> None:
    """Fire a datagram without waiting for anything (the answer, if any, is ignored)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(build(sock.getsockname()[1]), server)


def digest_response(user: str, realm: str, password: str, method: str, uri: str,
                    nonce: str) -> str:
    """RFC 2617 MD5 digest without qop (what the server verifies when qop is absent)."""

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    return md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'{method}:{uri}')}")


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str


def challenge_in(answer: str) -> Challenge:
    value = header(answer, "WWW-Authenticate") or ""
    realm = re.search(r'realm="([^"]*)"', value)
    nonce = re.search(r'nonce="([^"]*)"', value)
    assert realm and nonce, f"no digest challenge in:\n{answer}"
    return Challenge(realm.group(1), nonce.group(1))


def authorization(user: str, challenge: Challenge, password: str, method: str = "REGISTER",
                  uri: str = "sip:127.0.0.1") -> str:
    response = digest_response(user, challenge.realm, password, method, uri, challenge.nonce)
    return (f'Authorization: Digest username="{user}", realm="{challenge.realm}", '
            f'nonce="{challenge.nonce}", uri="{uri}", response="{response}", algorithm=MD5')


class RawPhone:
    """One loopback UDP socket speaking hand-made SIP to the server."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]

    def __enter__(self) -> RawPhone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, build: Callable[[int], bytes]) -> str:
        """Send one request; return its Call-ID (to match the answer with ``answers``)."""
        data = build(self.port)
        match = _CALL_ID.search(data.decode("latin-1"))
        assert match, "a request without a Call-ID"
        self.sock.sendto(data, self.server)
        return match.group(1)

    def answers(self, call_ids: list[str], timeout: float = 15.0) -> dict[str, tuple[str, float]]:
        """Wait for the final answer to each Call-ID: {call_id: (answer, monotonic time)}."""
        found: dict[str, tuple[str, float]] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(call_ids) and (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                answer = self.sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                break
            match = _CALL_ID.search(answer)
            if answer.startswith("SIP/2.0 1") or not match or match.group(1) not in call_ids:
                continue
            found.setdefault(match.group(1), (answer, time.monotonic()))
        return found

    def ask(self, build: Callable[[int], bytes], timeout: float = 15.0) -> str:
        call_id = self.send(build)
        found = self.answers([call_id], timeout)
        assert call_id in found, f"no answer within {timeout}s"
        return found[call_id][0]

    def register(self, user: str, password: str, *, timeout: float = 15.0) -> str:
        """REGISTER with digest: the challenge, then the answer. Returns the final answer."""
        first = self.ask(register_request(user, self.port), timeout)
        if status_of(first) != 401:
            return first
        auth = authorization(user, challenge_in(first), password)
        return self.ask(register_request(user, self.port, extra=(auth,)), timeout)


def register_request(user: str, port: int, *, extra: tuple[str, ...] = (),
                     contact: str | None = None, method: str = "REGISTER"
                     ) -> Callable[[int], bytes]:
    contact = contact or f"<sip:{user}@127.0.0.1:{port}>"
    return request(method, user=user, extra=(f"Contact: {contact}", *extra))
