"""The UDP sender and receiver loops that compat.py gives sippy (sip/udp.py), against
real loopback sockets and without sippy in this process: no datagram, in or out, ends
them."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from queue import Queue
from types import SimpleNamespace
from typing import Any

import pytest

from harness.wait import wait_until
from hookswitch.sip import udp


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(ours, the peer's): two loopback UDP sockets."""
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (ours, peer):
        sock.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    yield ours, peer
    ours.close()
    peer.close()


def server_for(skt: socket.socket) -> Any:
    """The parts of sippy's Udp_server its sender and receiver threads use."""
    return SimpleNamespace(skt=skt, sendqueue=Queue(), uopts=SimpleNamespace(
        family=socket.AF_INET))


def start(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_the_sender_outlives_every_unusable_destination(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    ours, peer = sockets
    server = server_for(ours)
    sender = start(udp.sender_loop, SimpleNamespace(userv=server))
    peer_port = peer.getsockname()[1]
    for destination in [("127.0.0.1", 99999), ("localhost", 99999), ("127.0.0.1", 0),
                        ("127.0.0.1", "5060"), ("bad..host", 5060), (None, 5060), "nowhere"]:
        server.sendqueue.put((b"lost", destination))
    server.sendqueue.put((object(), ("127.0.0.1", peer_port)))  # sendto raises TypeError
    server.sendqueue.put((b"arrives", ("localhost", peer_port)))  # resolved, as in sippy
    assert peer.recv(100) == b"arrives"
    assert sender.is_alive()
    server.sendqueue.put(None)
    sender.join(5)
    assert not sender.is_alive()


def test_the_receiver_outlives_every_datagram_and_drops_what_it_must(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    ours, peer = sockets
    handed_over: list[bytes] = []

    def hand_over(server: Any, data: bytes, address: Any) -> None:
        handed_over.append(data)
        if data.startswith(b"boom"):
            raise OverflowError("whatever the SIP side raises")

    receiver = start(udp.receiver_loop, SimpleNamespace(userv=server_for(ours)), hand_over)
    for data in [b"boom", b"X" * 9000, b"OPTIONS x SIP/2.0\r\nTo: a\x00b\r\n\r\n", b"last"]:
        peer.sendto(data, ours.getsockname())
    wait_until(lambda: b"last" in handed_over, 5, message=f"handed over: {handed_over}")
    assert handed_over == [b"boom", b"last"]  # too big, and a NUL in a header: dropped
    assert receiver.is_alive()
    with contextlib.suppress(OSError):  # ENOTCONN on UDP, and yet it ends reads (as sippy)
        ours.shutdown(socket.SHUT_RDWR)
    receiver.join(5)
    assert not receiver.is_alive()
