"""The server as a process: health, bad SIP input, shutdown and crash recovery."""

from __future__ import annotations

import signal
import socket
import uuid

import httpx
import pytest

from harness.processes import running
from harness.server import RunningServer
from harness.wait import wait_until

OPTIONS = (
    "OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch}\r\n"
    "From: <sip:probe@127.0.0.1>;tag=1\r\n"
    "To: <sip:127.0.0.1>\r\n"
    "Call-ID: {callid}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)


def exchange(server: RunningServer, payload: bytes, timeout: float = 2.0) -> str | None:
    """Send one datagram to the server; return the first answer, or None if it dropped it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        sock.sendto(payload, server.sip)
        try:
            return sock.recv(65535).decode(errors="replace")
        except TimeoutError:
            return None


def options(server: RunningServer) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        port = sock.getsockname()[1]
        text = OPTIONS.format(port=port, branch=uuid.uuid4().hex, callid=uuid.uuid4().hex)
        sock.sendto(text.encode(), server.sip)
        return sock.recv(65535).decode(errors="replace")


def test_healthz_and_options_answered(server: RunningServer) -> None:
    health = httpx.get(server.http + "/healthz", timeout=5)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    answer = options(server)
    assert answer is not None and answer.startswith("SIP/2.0 200")


BAD_INPUT = [
    b"\x00\xff" * 40,
    b"INVITE sip:200@127.0.0.1 SIP/2.0\r\nVia: nonsense\r\n\r\n" + b"x" * 20,
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: a-scanner-probing-for-sip\r\n\r\n",
]


@pytest.mark.parametrize("payload", BAD_INPUT, ids=["binary", "bad-via", "no-headers", "http"])
def test_malformed_messages_are_dropped_and_the_server_keeps_serving(
    server: RunningServer, payload: bytes
) -> None:
    answer = exchange(server, payload, timeout=0.5)
    assert answer is None or answer.startswith("SIP/2.0 4")
    assert options(server).startswith("SIP/2.0 200")  # type: ignore[union-attr]


def _request(method: str, port: int, *, to_tag: str = "", body: str = "") -> bytes:
    return (
        f"{method} sip:200@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
        "From: <sip:210@127.0.0.1>;tag=abc\r\n"
        f"To: <sip:200@127.0.0.1>{to_tag}\r\n"
        f"Call-ID: {uuid.uuid4().hex}\r\n"
        f"CSeq: 2 {method}\r\n"
        f"Contact: <sip:210@127.0.0.1:{port}>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def _answer_to(server: RunningServer, build) -> str:  # type: ignore[no-untyped-def]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2)
        sock.sendto(build(sock.getsockname()[1]), server.sip)
        while True:
            answer = sock.recv(65535).decode(errors="replace")
            if not answer.startswith("SIP/2.0 100"):
                return answer


def test_requests_for_unknown_dialogs_get_481(server: RunningServer) -> None:
    for method in ("BYE", "INVITE"):
        answer = _answer_to(server, lambda port, m=method: _request(m, port, to_tag=";tag=zz"))
        assert answer.startswith("SIP/2.0 481"), answer


def test_a_big_body_is_refused_with_413(server: RunningServer) -> None:
    body = "v=0\r\n" + "a=x-padding:" + "y" * 7_000 + "\r\n"
    answer = _answer_to(server, lambda port: _request("INVITE", port, body=body))
    assert answer.startswith("SIP/2.0 413"), answer
    assert options(server).startswith("SIP/2.0 200")  # type: ignore[union-attr]


def test_a_datagram_too_big_to_read_is_dropped(server: RunningServer) -> None:
    body = "v=0\r\n" + "a=x-padding:" + "y" * 30_000 + "\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        payload = _request("INVITE", sock.getsockname()[1], body=body)
    assert exchange(server, payload, timeout=0.5) is None
    assert options(server).startswith("SIP/2.0 200")  # type: ignore[union-attr]


def test_unknown_method_gets_501(server: RunningServer) -> None:
    answer = _answer_to(server, lambda port: _request("PUBLISH", port))
    assert answer.startswith("SIP/2.0 501"), answer


def test_sigterm_stops_cleanly(server: RunningServer) -> None:
    assert server.stop(signal.SIGTERM) == 0
    assert "server.stopped" in server.log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_the_events_worker_never_outlives_the_server(
    server: RunningServer, sig: signal.Signals
) -> None:
    workers = server.worker_pids()
    assert len(workers) == 1, "serve runs one events worker process"
    server.stop(sig)
    # SIGTERM: the server stops it; SIGKILL: it sees its socket close and exits by itself.
    wait_until(lambda: not running(workers[0]), 10,
               message="the events worker is still running")
