"""Work-arounds for sippy quirks, applied once on the SIP thread before anything runs.

Besides small parsing fixes, this is where sippy's threads are made unkillable: its
sender and receiver loops are replaced by those of udp.py, and its tracebacks and
prints about peers' messages become one log line per kind per minute.
"""

from __future__ import annotations

import functools
import socket
import sys
import threading
from datetime import datetime
from typing import Any

import sippy.Core.EventDispatcher
import sippy.Network_server
import sippy.SipMsg
import sippy.SipRequest
import sippy.SipTransactionManager
import sippy.SipURL
import sippy.UacStateRinging
import sippy.UacStateTrying
import sippy.UaStateConnected
import sippy.Udp_server
from sippy.Core.EventDispatcher import ED2
from sippy.Exceptions.SipParseError import SipParseError
from sippy.Network_server import Remote_address
from sippy.SipCSeq import SipCSeq
from sippy.SipNumericHF import SipNumericHF
from sippy.SipURL import SipURL
from sippy.Time.MonoTime import MonoTime
from sippy.Udp_server import AsyncReceiver, AsyncSender, Udp_server

from hookswitch.metrics import count_sip
from hookswitch.sip.addresses import ip_version, unusable_destination
from hookswitch.sip.lograte import short, warn_once
from hookswitch.sip.udp import dropped_send, receiver_loop, sender_loop
from hookswitch.sip.wire import MAX_DELTA, strict_number

MAX_CSEQ = 2**31 - 1  # RFC 3261 section 8.1.1.5

_patched = False


class MalformedNumber(SipParseError):  # type: ignore[misc]
    """A header number that is not 1*DIGIT: sippy answers 400 where it catches parse errors."""

    code = 400
    msg = "Bad Request"


def patch_sippy() -> None:
    global _patched
    if _patched:
        return
    _lower_case_transport()
    _strict_numbers()
    _answer_parse_errors()
    _one_line_instead_of_tracebacks()
    AsyncSender.run = sender_loop
    AsyncReceiver.run = _receive
    _send_from_the_sip_thread()
    _patched = True


def sippy_threads(transaction_manager: Any) -> list[threading.Thread]:
    """The sender and receiver threads of every socket sippy listens on."""
    servers = list(transaction_manager.l4r.cache_l2s.values())
    return [
        thread
        for server in servers
        for thread in (server.asenders or []) + (server.areceivers or [])
    ]


# --- parsing ----------------------------------------------------------------------------


def _lower_case_transport() -> None:
    """``transport=UDP`` in capitals (sipp sends it) breaks sippy's BYE path: lower-case it."""
    original = SipURL.setParams

    def set_params(self: Any, params: Any) -> None:
        original(self, params)
        if isinstance(self.transport, str):
            self.transport = self.transport.lower()

    SipURL.setParams = set_params


def _strict_numbers() -> None:
    """Header numbers as RFC 3261 writes them (wire.strict_number); a bad one raises a
    parse error, which sippy answers with 400 where it can build an answer."""

    def parse_number(self: Any) -> None:
        self.number = _number(self.body, self.hf_names[0])
        self.parsed = True

    def parse_cseq(self: Any) -> None:
        number, self.method = self.body.split()
        self.cseq = _number(number, "CSeq", MAX_CSEQ, clamp=False)
        self.parsed = True

    SipNumericHF.parse = parse_number
    SipCSeq.parse = parse_cseq


def _number(text: str, name: str, maximum: int = MAX_DELTA, clamp: bool = True) -> int:
    try:
        return strict_number(text, name, maximum, clamp)
    except ValueError as error:
        raise MalformedNumber(str(error)) from None


def _answer_parse_errors() -> None:
    """sippy prepares a 400 for a body shorter than its Content-Length, then asks for it
    with ``getResponse()`` while the method wants a request: a ``TypeError`` instead of
    the 400. Hand out the prepared answer when no request is given."""
    original = SipParseError.getResponse

    def get_response(self: Any, req: Any = None) -> Any:
        if req is None:
            return self.sip_response
        return original(self, req)

    SipParseError.getResponse = get_response


def _one_line_instead_of_tracebacks() -> None:
    """sippy's ``dump_exception`` prints a traceback and the whole datagram to stdout, for
    every message it cannot parse: a scanner made ~1,900 tracebacks in 20 s, and the
    datagram may carry credentials. One warning line per kind of error per minute instead;
    the innermost frame still says where it happened."""
    for module in (sippy.Core.EventDispatcher, sippy.Network_server,
                   sippy.SipTransactionManager, sippy.Udp_server):
        module.dump_exception = _report
    # Its print()s about peers' messages ("invalid status code", then the whole datagram;
    # "non-compliant URI") likewise: a module-level name is found before the builtin.
    for module in (sippy.SipTransactionManager, sippy.SipMsg, sippy.SipRequest, sippy.SipURL,
                   sippy.UaStateConnected, sippy.UacStateRinging, sippy.UacStateTrying):
        module.print = functools.partial(_said, module.__name__)


def _report(message: str, f: Any = None, extra: Any = None) -> None:
    error = sys.exc_info()[1]
    where = _innermost_frame(error)
    warn_once((type(error), where), "sip.sippy_error", what=message,
              error=short(f"{type(error).__name__}: {error}"), at=where)


def _said(module: str, *args: Any, **kwargs: Any) -> None:
    text = " ".join(str(arg) for arg in args if not isinstance(arg, datetime))
    warn_once(("said", module), "sip.sippy_said", module=module,
              text=short(text.strip().split("\n", 1)[0]))


def _innermost_frame(error: BaseException | None) -> str:
    traceback = error.__traceback__ if error is not None else None
    if traceback is None:
        return "?"
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{traceback.tb_lineno} {code.co_name}"


# --- the UDP threads (udp.py) and the direct send ---------------------------------------


def _send_from_the_sip_thread() -> None:
    """Send UDP datagrams to IP addresses straight from the SIP thread.

    sippy hands every datagram to a sender thread through a queue; in a process that also
    runs an event loop, waking that thread and passing the GIL to it cost more than the
    ``sendto`` itself. A send that would block, or to a host name (which the sender thread
    resolves), still goes through the queue; so does one from any other thread. A
    destination no datagram can reach is dropped here, before it is queued.
    """
    original = Udp_server.send_to
    sip_thread = threading.get_ident()
    ipv4: dict[str, bool] = {}

    def send_to(self: Any, data: Any, address: Any, delayed: bool = False) -> None:
        reason = unusable_destination(address)
        if reason is not None:
            dropped_send(address, reason)
            return
        host = address[0]
        if (threading.get_ident() == sip_thread and self.uopts.family == socket.AF_INET
                and _is_ipv4(ipv4, host)):
            payload = data if isinstance(data, bytes) else data.encode("utf-8")
            try:
                if self.skt.sendto(payload, socket.MSG_DONTWAIT, address) == len(payload):
                    count_sip("out", payload)
                    return
            except OSError:
                pass  # the sender thread retries it, as sippy always does
            except Exception as error:
                dropped_send(address, f"{type(error).__name__}: {error}")
                return
        original(self, data, address, delayed)

    Udp_server.send_to = send_to


def _is_ipv4(cache: dict[str, bool], host: str) -> bool:
    known = cache.get(host)
    if known is None:
        known = ip_version(host) == 4
        if len(cache) < 10_000:  # the set of peers is small; never grow without bound
            cache[host] = known
    return known


def _receive(receiver: Any) -> None:
    """``AsyncReceiver.run``: udp.receiver_loop, handing datagrams to the SIP thread."""
    receiver_loop(receiver, _hand_to_sip_thread)


def _hand_to_sip_thread(server: Any, data: bytes, address: Any) -> None:
    """What sippy's receiver did with a datagram once read."""
    if server.uopts.family == socket.AF_INET6:
        address = (f"[{address[0]}]", address[1])
    received = MonoTime()
    if server.uopts.direct_dispatch:
        server.handle_read(data, address, received)
    else:
        ED2.callFromThread(server.handle_read, data, Remote_address(address, server.transport),
                           received)
