"""sippy's UDP sender and receiver loops, rewritten so that no datagram ends them.

sippy 2.5 has one sender and one receiver thread per socket (``nworkers = 1``), and an
exception in either ended it for good: one datagram whose Via said ``127.0.0.1:99999;
received=localhost`` made ``sendto`` raise ``OverflowError`` in the sender, and from then
on every queued answer was silently lost. Here every datagram, in and out, is handled on
its own; whatever it raises is logged (one line per kind per minute) and the loop goes
on. compat.py installs these as ``AsyncSender.run`` and ``AsyncReceiver.run``; they use
only what those threads are given (the Udp_server's socket, queue and options) and take
the hand-off to the SIP thread as a parameter, so this module imports no sippy.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from errno import EAGAIN, EBADF, ENOBUFS, ENOTCONN, ESHUTDOWN, EWOULDBLOCK
from typing import Any

from hookswitch.metrics import count_sip
from hookswitch.sip.addresses import unusable_destination
from hookswitch.sip.lograte import short, warn_once
from hookswitch.sip.wire import MAX_DATAGRAM, datagram_refusal

SEND_ATTEMPTS = 20  # a full socket buffer is retried every 10 ms, as sippy does

HandOver = Callable[[Any, bytes, Any], None]  # (Udp_server, datagram, (host, port))


# --- sending ----------------------------------------------------------------------------


def sender_loop(sender: Any) -> None:
    """``AsyncSender.run``: one queued datagram at a time; nothing one datagram does (a
    port out of range, a host that does not resolve, a full buffer) ends the loop."""
    server = sender.userv
    while True:
        item = server.sendqueue.get()
        if item is None:
            server.sendqueue.put(None)  # shutting down: pass it on to the other senders
            break
        data, address = item
        try:
            _send_queued(server, data, address)
        except BrokenPipeError:
            pass  # the socket was shut down under us: the None that stops us follows
        except Exception as error:
            dropped_send(address, f"{type(error).__name__}: {error}")
    sender.userv = None


def _send_queued(server: Any, data: bytes, address: Any) -> None:
    reason = unusable_destination(address)
    if reason is not None:
        dropped_send(address, reason)
        return
    family = server.uopts.family
    found = socket.getaddrinfo(address[0].strip("[]"), None, family)[0][4]
    destination = (found[0], address[1], *found[2:]) if family == socket.AF_INET6 else (
        found[0], address[1])
    for _ in range(SEND_ATTEMPTS):
        try:
            if server.skt.sendto(data, destination) == len(data):
                count_sip("out", data)
                return
        except OSError as error:
            if error.errno not in (EWOULDBLOCK, ENOBUFS, EAGAIN):
                raise
        time.sleep(0.01)
    dropped_send(address, "the socket buffer stayed full")


def dropped_send(address: Any, reason: str) -> None:
    destination = short(repr(address), 100)
    warn_once(("send", destination), "sip.send_dropped", destination=destination, reason=reason)


# --- receiving --------------------------------------------------------------------------


def receiver_loop(receiver: Any, hand_over: HandOver) -> None:
    """``AsyncReceiver.run``: read datagrams and hand each to the SIP thread. It stops only
    when the socket is closed; a read error is logged and the next datagram read."""
    server = receiver.userv
    empty_reads = 0
    while True:
        try:
            data, address = server.skt.recvfrom(MAX_DATAGRAM + 1)
        except OSError as error:
            if error.errno in (EBADF, ENOTCONN, ESHUTDOWN):
                break  # closed: the server is stopping
            warn_once(("receive", error.errno), "sip.receive_failed", error=str(error))
            time.sleep(0.01)  # an error that repeats must not spin a core
            continue
        if not data and address is None:
            # sippy's sign of a socket shut down under it (some reads come back empty
            # anyway, hence the count).
            empty_reads += 1
            if empty_reads >= 100:
                break
            continue
        empty_reads = 0
        try:
            _deliver(server, data, address, hand_over)
        except Exception as error:
            warn_once(("deliver", type(error)), "sip.receive_failed",
                      error=short(f"{type(error).__name__}: {error}"))
    receiver.userv = None


def _deliver(server: Any, data: bytes, address: Any, hand_over: HandOver) -> None:
    count_sip("in", data)
    reason = datagram_refusal(data)
    if reason is not None:
        warn_once(("refused", address[0], reason), "sip.datagram_dropped",
                  source=address[0], reason=reason)
        return
    hand_over(server, data, address)
