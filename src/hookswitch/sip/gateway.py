"""The only module that touches sippy's loop: one thread runs it, commands cross in with
``ED2.callFromThread`` and signals cross out through the ``emit`` callback (which the
server binds to ``loop.call_soon_threadsafe``). No exception escapes the SIP thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from sippy.Core.EventDispatcher import ED2
from sippy.SipAddress import SipAddress
from sippy.SipConf import SipConf
from sippy.SipContact import SipContact
from sippy.SipTransactionManager import RINGING, TRYING, SipTransactionManager
from sippy.SipURL import SipURL
from sippy.Time.Timeout import Timeout
from sippy.UA import UA
from sippy.Udp_server import Udp_server_opts

from hookswitch.calls.commands import (
    CallEnded,
    CallOffered,
    Command,
    Connect,
    Hangup,
    Reject,
    RingUser,
    Signal,
    TrunkNumber,
    UserDevices,
)
from hookswitch.calls.ids import CallId, UserId, new_call_id
from hookswitch.calls.leg import HangupReason
from hookswitch.clock import now_us
from hookswitch.directory.snapshot import Directory
from hookswitch.sip import compat
from hookswitch.sip.auth import (
    DEFAULT_ALGORITHMS,
    Authenticated,
    Challenge,
    authenticate,
    challenge_headers,
)
from hookswitch.sip.bridge import Bridge
from hookswitch.sip.compat import sippy_threads
from hookswitch.sip.location import Binding, Location
from hookswitch.sip.lograte import warn_once
from hookswitch.sip.registrar import Registrar
from hookswitch.sip.tarpit import Tarpit
from hookswitch.sip.thread import SipThread
from hookswitch.sip.validate import Drop, Refuse, check_request
from hookswitch.sip.wire import redact_credentials

log = structlog.get_logger("hookswitch.sip")

# An SDP is a few hundred bytes (a few KB with video); sippy reads at most 8 KB per
# datagram, so a larger message arrives truncated and is dropped as unparsable.
MAX_BODY = 6 * 1024


class _SipLog:
    """sippy's logger interface; SIP traces go to structlog at debug level when enabled,
    without the credentials."""

    level = 1

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def write(self, *args: Any, **kwargs: Any) -> None:
        if self.enabled:
            log.debug("sip", message=redact_credentials("".join(str(a) for a in args)))


class SipGateway:
    def __init__(
        self,
        address: tuple[str, int],
        directory: Directory,
        location: Location,
        emit: Callable[[Signal], object],
        on_binding: Callable[[str, Binding | None, str | None], object],
        trace: bool = False,
        digest_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
    ) -> None:
        self.address = address
        self.directory = directory
        self.location = location
        self._emit = emit
        self.algorithms = digest_algorithms
        self.registrar = Registrar(lambda: self.directory, location, on_binding, digest_algorithms)
        self.tarpit = Tarpit()
        self.bridges: dict[CallId, Bridge] = {}
        self._trace = trace
        self._thread: SipThread | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._startup_error: BaseException | None = None
        self.global_config: dict[str, Any] = {}

    # --- lifecycle (called from the asyncio side) --------------------------------------

    def start(self, sip_thread: SipThread, timeout: float = 10.0) -> None:
        self._thread = sip_thread
        sip_thread.run(self._run)
        if not self._ready.wait(timeout):
            raise RuntimeError("the SIP thread did not start")
        if self._startup_error is not None:
            raise self._startup_error

    def _run(self) -> None:
        ED2.my_ident = threading.get_ident()
        try:
            compat.patch_sippy()
            host, port = self.address
            SipConf.my_address = host
            SipConf.my_port = port
            SipConf.my_uaname = "hookswitch"
            # One worker: several can deliver a 180 after its 200 (SIP-NOTES.md).
            Udp_server_opts.nworkers = 1
            self.global_config = {
                "_sip_address": host,
                "_sip_port": port,
                "_sip_logger": _SipLog(self._trace),
            }
            self.global_config["_sip_tm"] = SipTransactionManager(
                self.global_config, self._guarded_request
            )
        except BaseException as exc:  # reported to start() on the other thread
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            ED2.loop()
        finally:
            self._stopped.set()

    def stop(self, timeout: float = 5.0) -> None:
        """End live calls with BYE/CANCEL, let the messages leave, then stop the loop."""
        if self._thread is None or not self._thread.is_alive():
            return
        done = threading.Event()

        def shutdown() -> None:
            for bridge in list(self.bridges.values()):
                self._safely(bridge.hangup, HangupReason.FAILED)
            # Give the BYEs/CANCELs a moment on the wire before the loop stops.
            def finish() -> None:
                ED2.breakLoop(0)
                done.set()

            Timeout(finish, 0.3)

        ED2.callFromThread(shutdown)
        done.wait(timeout)
        self._stopped.wait(timeout)

    # --- commands from the domain (any thread) -----------------------------------------

    def submit(self, command: Command) -> None:
        ED2.callFromThread(self._execute_guarded, command)

    def has_devices(self, user_id: UserId) -> bool:
        return self.location.has_devices(user_id)

    def threads_alive(self) -> bool:
        """The SIP loop thread and sippy's sender and receiver threads all run (/healthz)."""
        if self._thread is None or not self._thread.is_alive() or self._stopped.is_set():
            return False
        transaction_manager = self.global_config.get("_sip_tm")
        if transaction_manager is None:
            return False
        threads = sippy_threads(transaction_manager)
        return bool(threads) and all(thread.is_alive() for thread in threads)

    def _execute_guarded(self, command: Command) -> None:
        """A command that fails ends its call (reason ``failed``) instead of leaving it
        ringing forever; the SIP thread goes on."""
        try:
            self._execute(command)
        except Exception:
            log.exception("sip.command_failed", command=type(command).__name__)
            bridge = self.bridges.get(command.call_id)
            if bridge is not None:
                self._safely(bridge.hangup, HangupReason.FAILED)
            else:
                self._emit(CallEnded(call_id=command.call_id, reason=HangupReason.FAILED,
                                     at_us=now_us()))

    def _execute(self, command: Command) -> None:
        if isinstance(command, RingUser):
            self._ring_user(command)
            return
        bridge = self.bridges.get(command.call_id)
        if bridge is None:
            return  # the call ended on the SIP side meanwhile; its CallEnded is on the way
        match command:
            case Reject(status=status, phrase=phrase):
                bridge.reject(status, phrase, None)
            case Hangup():
                bridge.hangup(HangupReason.API)
            case Connect():
                self._connect(bridge, command)
            case RingUser():  # handled above: it creates the bridge
                pass

    def _ring_user(self, command: RingUser) -> None:
        bridge = Bridge(command.call_id, None, None, self._emit, now_us, self._bridge_done)
        self.bridges[command.call_id] = bridge
        devices = [(b.source, b.contact) for b in self.location.devices(command.user_id)]
        if not devices:  # unregistered since the API checked
            bridge.reject(480, "Temporarily Unavailable", HangupReason.UNAVAILABLE)
            return
        bridge.ring_user(
            self.new_ua,
            devices,
            command.display_name,
            command.shown_number,
            command.auto_answer,
            command.timeout,
        )

    def _connect(self, bridge: Bridge, command: Connect) -> None:
        targets: list[tuple[tuple[str, int], str | None]]
        match command.target:
            case UserDevices(user_id=user_id):
                targets = [(b.source, b.contact) for b in self.location.devices(user_id)]
            case TrunkNumber(host=host, port=port):
                targets = [((host, port), None)]
        if not targets:
            bridge.reject(480, "Temporarily Unavailable", HangupReason.UNAVAILABLE)
            return
        bridge.dial(
            self.new_ua,
            targets,
            command.caller_number,
            command.caller_name,
            command.callee_number,
            command.ring_timeout,
        )

    # --- requests from the network (SIP thread) ----------------------------------------

    def _guarded_request(self, req: Any, sip_t: Any) -> Any:
        try:
            return self._on_request(req, sip_t)
        except Exception:
            log.exception("sip.request_failed", method=_method(req))
            try:
                return (req.genResponse(500, "Server Internal Error"), None, None)
            except Exception:
                return None

    def _on_request(self, req: Any, sip_t: Any) -> Any:
        match check_request(req):
            case Drop(reason=reason):
                self._drop(req, sip_t, reason)
                return None
            case Refuse(status=status, reason=reason):
                resp = req.genResponse(status, reason)
                resp.sipver = "SIP/2.0"  # the one version we speak, even to a SIP/3.0 request
                return (resp, None, None)
        method = req.getMethod()
        if req.getBody() is not None and len(str(req.getBody())) > MAX_BODY:
            return (req.genResponse(413, "Request Entity Too Large"), None, None)
        if req.getHFBody("to").getTag() is not None:
            # In-dialog request for a dialog we do not know (ours are matched by sippy).
            return (req.genResponse(481, "Call/Transaction Does Not Exist"), None, None)
        if method == "REGISTER":
            return self._register(req, sip_t)
        if method == "INVITE":
            return self._invite(req, sip_t)
        if method == "OPTIONS":
            resp = req.genResponse(200, "OK")
            return (resp, None, None)
        if method in ("ACK", "CANCEL", "BYE"):
            return (req.genResponse(481, "Call/Transaction Does Not Exist"), None, None)
        return (req.genResponse(501, "Not Implemented"), None, None)

    def _drop(self, req: Any, sip_t: Any, reason: str) -> None:
        """Leave a request unanswered. sippy forgets a transaction that ``req_cb`` did not
        answer when none of its timers is set; an INVITE's expiry timer (teE) is, so it is
        cancelled, or the transaction would wait for it and then fail to send a 487."""
        source = req.getSource()[0]
        warn_once(("dropped", source, reason), "sip.request_dropped", source=source,
                 method=_method(req), reason=reason)
        if sip_t.teE is not None:
            sip_t.teE.cancel()
            sip_t.teE = None

    def _register(self, req: Any, sip_t: Any) -> Any:
        source = req.getSource()[0]
        user = req.getHFBody("to").getUrl().username or ""
        resp, failed = self.registrar.handle(req)
        if failed:
            self.tarpit.failed(source, user)
        elif resp.getSCode()[0] == 200:
            self.tarpit.succeeded(source, user)
        return self._answer_maybe_later(resp, sip_t, source, user)

    def _answer_maybe_later(self, resp: Any, sip_t: Any, source: str, user: str) -> Any:
        """A challenge or refusal for a (source, user) the tarpit holds is answered late."""
        delay = self.tarpit.delay(source, user) if resp.getSCode()[0] in (401, 403) else 0.0
        if delay <= 0:
            return (resp, None, None)
        warn_once(("tarpit", source), "sip.tarpit", source=source, user=user, delay=delay)
        self._answer_later(resp, sip_t, delay)
        return None

    def _answer_later(self, resp: Any, sip_t: Any, delay: float) -> None:
        """Keep the server transaction and send ``resp`` on it after ``delay`` seconds.

        sippy keeps a transaction that ``req_cb`` did not answer only while one of its
        timers is set. The delayed answer is held in teF, the slot of the provisional
        answer's retransmission (unused before any answer): sippy cancels it itself when
        the transaction ends another way (CANCEL, an INVITE's expiry), and a retransmitted
        request meanwhile finds the transaction and waits with it.
        """
        transaction_manager = self.global_config["_sip_tm"]

        def answer() -> None:
            sip_t.teF = None
            if sip_t.state in (TRYING, RINGING):
                transaction_manager.sendResponse(resp, sip_t)

        sip_t.teF = Timeout(lambda: self._safely(answer), delay)

    def _invite(self, req: Any, sip_t: Any) -> Any:
        host, port = req.getSource()
        trunk = self.directory.trunk_for_source(host, int(port))
        call_id = new_call_id()
        if trunk is not None:
            from_url = req.getHFBody("from").getUrl()
            offer = CallOffered(
                call_id=call_id,
                tenant_id=trunk.tenant_id,
                dialled=req.getRURI().username or "",
                at_us=now_us(),
                from_number=from_url.username or "anonymous",
                from_name=req.getHFBody("from").getUri().name or "",
            )
        else:
            user = req.getHFBody("from").getUrl().username or ""
            verdict = authenticate(self.directory, req, "from")
            if not isinstance(verdict, Authenticated):
                if isinstance(verdict, Challenge):
                    resp = req.genResponse(401, "Unauthorized")
                    resp.appendHeaders(challenge_headers(verdict.realm, self.algorithms))
                else:
                    self.tarpit.failed(host, user)
                    resp = req.genResponse(403, "Forbidden")
                return self._answer_maybe_later(resp, sip_t, host, user)
            self.tarpit.succeeded(host, user)
            offer = CallOffered(
                call_id=call_id,
                tenant_id=verdict.tenant.id,
                dialled=req.getRURI().username or "",
                at_us=now_us(),
                from_user=verdict.user.id,
            )
        holder: dict[str, Bridge] = {}

        def caller_event(event: Any, ua: Any) -> None:
            bridge = holder.get("bridge")
            if bridge is None:
                # The first event is the CCEventTry of the INVITE itself.
                body = event.getData()[3]  # the caller's SDP offer, passed through
                bridge = Bridge(call_id, ua, body, self._emit, now_us, self._bridge_done)
                holder["bridge"] = bridge
                self.bridges[call_id] = bridge
                self._emit(offer)
                return
            self._safely(bridge.caller_event, event, ua)

        ua = self.new_ua(caller_event)
        return ua.recvRequest(req, sip_t)

    def new_ua(self, event_cb: Callable[[Any, Any], None], **kwargs: Any) -> Any:
        """A sippy UA whose Contact is a plain URI of ours (no "Anonymous" display name)."""
        ua = UA(self.global_config, event_cb, **kwargs)
        host, port = self.address
        ua.lContact = SipContact(
            address=SipAddress(url=SipURL(username="hookswitch", host=host, port=port))
        )
        return ua

    def _bridge_done(self, call_id: CallId) -> None:
        self.bridges.pop(call_id, None)

    def _safely(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("sip.callback_failed", callback=getattr(fn, "__name__", repr(fn)))


def _method(req: Any) -> str:
    try:
        return str(req.getMethod())
    except Exception:
        return "?"
