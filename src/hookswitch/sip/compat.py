"""Work-arounds for sippy quirks, applied once on the SIP thread before anything runs."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

from sippy.SipURL import SipURL
from sippy.Udp_server import Udp_server

_patched = False


def patch_sippy() -> None:
    """``transport=UDP`` in capitals (sipp sends it) breaks sippy's BYE path: lower-case it."""
    global _patched
    if _patched:
        return
    original = SipURL.setParams

    def set_params(self: Any, params: Any) -> None:
        original(self, params)
        if isinstance(self.transport, str):
            self.transport = self.transport.lower()

    SipURL.setParams = set_params
    _send_from_the_sip_thread()
    _patched = True


def _send_from_the_sip_thread() -> None:
    """Send UDP datagrams to IP addresses straight from the SIP thread.

    sippy hands every datagram to a sender thread through a queue; in a process that also
    runs an event loop, waking that thread and passing the GIL to it cost more than the
    ``sendto`` itself. A send that would block, or to a host name (which the sender thread
    resolves), still goes through the queue; so does one from any other thread.
    """
    original = Udp_server.send_to
    sip_thread = threading.get_ident()
    literal: dict[str, bool] = {}

    def send_to(self: Any, data: Any, address: Any, delayed: bool = False) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if (threading.get_ident() == sip_thread and isinstance(host, str)
                and self.uopts.family == socket.AF_INET and _is_ipv4(literal, host)):
            payload = data if isinstance(data, bytes) else data.encode("utf-8")
            try:
                if self.skt.sendto(payload, socket.MSG_DONTWAIT, address) == len(payload):
                    return
            except OSError:
                pass  # the sender thread retries it, as sippy always does
        original(self, data, address, delayed)

    Udp_server.send_to = send_to


def _is_ipv4(cache: dict[str, bool], host: str) -> bool:
    known = cache.get(host)
    if known is None:
        try:
            known = isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address)
        except ValueError:
            known = False
        if len(cache) < 10_000:  # the set of peers is small; never grow without bound
            cache[host] = known
    return known
