"""Work-arounds for sippy quirks, applied once on the SIP thread before anything runs.

Besides small parsing fixes, this is where sippy's threads are made unkillable: sippy 2.5
has one sender and one receiver thread per socket (``nworkers = 1``), and an exception
in either ended it for good. One datagram whose Via said ``127.0.0.1:99999;received=
localhost`` made ``sendto`` raise ``OverflowError`` in the sender; from then on every
queued answer was silently lost. Here every datagram, in and out, is handled on its own:
whatever it raises is logged (one line per kind, per minute) and the loop goes on.
"""

from __future__ import annotations

import functools
import socket
import sys
import threading
import time
from datetime import datetime
from errno import EAGAIN, EBADF, ENOBUFS, ENOTCONN, ESHUTDOWN, EWOULDBLOCK
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
import structlog
from sippy.Core.EventDispatcher import ED2
from sippy.Exceptions.SipParseError import SipParseError
from sippy.Network_server import Remote_address
from sippy.SipCSeq import SipCSeq
from sippy.SipNumericHF import SipNumericHF
from sippy.SipURL import SipURL
from sippy.Time.MonoTime import MonoTime
from sippy.Udp_server import AsyncReceiver, AsyncSender, Udp_server

from hookswitch.sip.addresses import ip_version, unusable_destination
from hookswitch.sip.lograte import LogOncePerWindow
from hookswitch.sip.wire import MAX_DATAGRAM, MAX_DELTA, datagram_refusal, strict_number

log = structlog.get_logger("hookswitch.sip")
log_once = LogOncePerWindow(log.warning)

MAX_CSEQ = 2**31 - 1  # RFC 3261 section 8.1.1.5
_SEND_ATTEMPTS = 20  # a full socket buffer is retried every 10 ms, as sippy does

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
    AsyncSender.run = _sender_loop
    AsyncReceiver.run = _receiver_loop
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
    log_once((type(error), where), "sip.sippy_error", what=message,
             error=_short(f"{type(error).__name__}: {error}"), at=where)


def _said(module: str, *args: Any, **kwargs: Any) -> None:
    text = " ".join(str(arg) for arg in args if not isinstance(arg, datetime))
    log_once(("said", module), "sip.sippy_said", module=module,
             text=_short(text.strip().split("\n", 1)[0]))


def _innermost_frame(error: BaseException | None) -> str:
    traceback = error.__traceback__ if error is not None else None
    if traceback is None:
        return "?"
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{traceback.tb_lineno} {code.co_name}"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --- sending ----------------------------------------------------------------------------


def _sender_loop(sender: Any) -> None:
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
            _dropped_send(address, f"{type(error).__name__}: {error}")
    sender.userv = None


def _send_queued(server: Any, data: bytes, address: Any) -> None:
    reason = unusable_destination(address)
    if reason is not None:
        _dropped_send(address, reason)
        return
    family = server.uopts.family
    found = socket.getaddrinfo(address[0].strip("[]"), None, family)[0][4]
    destination = (found[0], address[1], *found[2:]) if family == socket.AF_INET6 else (
        found[0], address[1])
    for _ in range(_SEND_ATTEMPTS):
        try:
            if server.skt.sendto(data, destination) == len(data):
                return
        except OSError as error:
            if error.errno not in (EWOULDBLOCK, ENOBUFS, EAGAIN):
                raise
        time.sleep(0.01)
    _dropped_send(address, "the socket buffer stayed full")


def _dropped_send(address: Any, reason: str) -> None:
    destination = _short(repr(address), 100)
    log_once(("send", destination), "sip.send_dropped", destination=destination, reason=reason)


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
            _dropped_send(address, reason)
            return
        host = address[0]
        if (threading.get_ident() == sip_thread and self.uopts.family == socket.AF_INET
                and _is_ipv4(ipv4, host)):
            payload = data if isinstance(data, bytes) else data.encode("utf-8")
            try:
                if self.skt.sendto(payload, socket.MSG_DONTWAIT, address) == len(payload):
                    return
            except OSError:
                pass  # the sender thread retries it, as sippy always does
            except Exception as error:
                _dropped_send(address, f"{type(error).__name__}: {error}")
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


# --- receiving --------------------------------------------------------------------------


def _receiver_loop(receiver: Any) -> None:
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
            log_once(("receive", error.errno), "sip.receive_failed", error=str(error))
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
            _deliver(server, data, address)
        except Exception as error:
            log_once(("deliver", type(error)), "sip.receive_failed",
                     error=_short(f"{type(error).__name__}: {error}"))
    receiver.userv = None


def _deliver(server: Any, data: bytes, address: Any) -> None:
    reason = datagram_refusal(data)
    if reason is not None:
        log_once(("refused", address[0], reason), "sip.datagram_dropped",
                 source=address[0], reason=reason)
        return
    if server.uopts.family == socket.AF_INET6:
        address = (f"[{address[0]}]", address[1])
    received = MonoTime()
    if server.uopts.direct_dispatch:
        server.handle_read(data, address, received)
    else:
        ED2.callFromThread(server.handle_read, data, Remote_address(address, server.transport),
                           received)
