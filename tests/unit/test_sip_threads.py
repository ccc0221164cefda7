"""sippy's sender and receiver threads, as patched by sip/compat.py, against real loopback
sockets: no datagram, in or out, ends them."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from queue import Queue
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from hookswitch.sip.thread import SipThread
from tests.phones.wait import wait_until


@pytest.fixture(scope="module")
def udp() -> Iterator[ModuleType]:
    """sippy.Udp_server with hookswitch's patches, applied on a SIP thread that then runs
    sippy's loop, as in the server (sippy is imported there first, see sip/thread.py)."""
    sip_thread = SipThread()
    patched = threading.Event()

    def run() -> None:
        from sippy.Core.EventDispatcher import ED2

        from hookswitch.sip import compat

        ED2.my_ident = threading.get_ident()
        compat.patch_sippy()
        patched.set()
        ED2.loop()

    sip_thread.run(run)
    assert patched.wait(10)
    import sippy.Udp_server
    from sippy.Core.EventDispatcher import ED2

    yield sippy.Udp_server
    ED2.callFromThread(ED2.breakLoop)
    sip_thread.thread.join(10)


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(ours, the peer's): two loopback UDP sockets."""
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (ours, peer):
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
    yield ours, peer
    ours.close()
    peer.close()


class FakeServer:
    """The parts of sippy's Udp_server its sender and receiver threads use."""

    def __init__(self, skt: socket.socket, handle: Any = None) -> None:
        self.skt = skt
        self.sendqueue: Queue[Any] = Queue()
        self.uopts = SimpleNamespace(family=socket.AF_INET, direct_dispatch=True)
        self.transport = "udp"
        self.handled: list[bytes] = []
        self._handle = handle

    def handle_read(self, data: bytes, address: Any, received: Any) -> None:
        self.handled.append(data)
        if self._handle is not None:
            self._handle(data)


def test_the_sender_outlives_every_unusable_destination(
    udp: ModuleType, sockets: tuple[socket.socket, socket.socket]
) -> None:
    ours, peer = sockets
    server = FakeServer(ours)
    sender = udp.AsyncSender(server)
    peer_port = peer.getsockname()[1]
    for destination in [("127.0.0.1", 99999), ("localhost", 99999), ("127.0.0.1", 0),
                        ("127.0.0.1", "5060"), ("bad..host", 5060), (None, 5060), "nowhere"]:
        server.sendqueue.put((b"lost", destination))
    server.sendqueue.put((object(), ("127.0.0.1", peer_port)))  # sendto raises TypeError
    server.sendqueue.put((b"arrives", ("localhost", peer_port)))
    assert peer.recv(100) == b"arrives"
    assert sender.is_alive()
    server.sendqueue.put(None)
    sender.join(5)
    assert not sender.is_alive()


def test_the_receiver_outlives_every_datagram_and_drops_what_it_must(
    udp: ModuleType, sockets: tuple[socket.socket, socket.socket]
) -> None:
    ours, peer = sockets

    def handle(data: bytes) -> None:
        if data.startswith(b"boom"):
            raise OverflowError("whatever the handler raises")

    ours.settimeout(None)  # blocking, as sippy's socket
    server = FakeServer(ours, handle)
    receiver = udp.AsyncReceiver(server)
    address = ours.getsockname()
    for data in [b"boom", b"X" * 9000, b"OPTIONS x SIP/2.0\r\nTo: a\x00b\r\n\r\n", b"last"]:
        peer.sendto(data, address)
    wait_until(lambda: b"last" in server.handled, 5, message=f"handled: {server.handled}")
    assert server.handled == [b"boom", b"last"]  # too big, and a NUL in a header: dropped
    assert receiver.is_alive()
    with contextlib.suppress(OSError):  # ENOTCONN on UDP, and yet it stops reads (as sippy)
        ours.shutdown(socket.SHUT_RDWR)
    receiver.join(5)
    assert not receiver.is_alive()
