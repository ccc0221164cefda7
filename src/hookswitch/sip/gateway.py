"""The only module that touches sippy's loop: one thread runs it, commands cross in with
``ED2.callFromThread`` and signals cross out through the ``emit`` callback (which the
server binds to ``loop.call_soon_threadsafe``). No exception escapes the SIP thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, assert_never

import structlog
from sippy.Core.EventDispatcher import ED2
from sippy.SipAddress import SipAddress
from sippy.SipConf import SipConf
from sippy.SipContact import SipContact
from sippy.SipHeader import SipHeader
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
    Hold,
    Merge,
    Reject,
    Resume,
    RingUser,
    Signal,
    Transfer,
    TrunkNumber,
    UserDevices,
)
from hookswitch.calls.commands import (
    Target as CommandTarget,
)
from hookswitch.calls.dialogs import Dialog, DialogRecord
from hookswitch.calls.directory import Directory
from hookswitch.calls.ids import CallId, UserId, new_call_id
from hookswitch.calls.leg import HangupReason
from hookswitch.calls.registrations import Binding
from hookswitch.clock import now_us
from hookswitch.sip import compat, validate
from hookswitch.sip.auth import (
    DEFAULT_ALGORITHMS,
    Authenticated,
    Challenge,
    authenticate,
    challenge_headers,
)
from hookswitch.sip.bridge import Bridge
from hookswitch.sip.bridge_state import (
    CALLER,
    BridgeMachine,
    DialTargets,
    HoldSide,
    Refuse,
    ResumeSide,
    RingDevices,
    Target,
    TransferTo,
)
from hookswitch.sip.compat import sippy_threads
from hookswitch.sip.dialogs import send_bye
from hookswitch.sip.edge import first_hop, path_of, source_of
from hookswitch.sip.location import Location
from hookswitch.sip.lograte import warn_once
from hookswitch.sip.registrar import Registrar
from hookswitch.sip.tarpit import Tarpit
from hookswitch.sip.thread import SipThread
from hookswitch.sip.translate import is_new_call, offer_of
from hookswitch.sip.validate import check_request
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
    """Binds first (``bind``), answers 503 until ``open`` gives it the directory, then
    registers phones and runs calls."""

    def __init__(
        self,
        address: tuple[str, int],
        location: Location,
        emit: Callable[[Signal], object],
        on_binding: Callable[[str, Binding | None, str | None], object],
        on_dialogs: Callable[[DialogRecord], object] = lambda record: None,
        trace: bool = False,
        digest_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
        edge: tuple[str, int] | None = None,
    ) -> None:
        self.address = address
        # The cluster's SIP edge (None on a single server): the one sender whose word on
        # where a request came from is believed (sip/edge.py).
        self.edge = edge
        # None until open(): requests are answered 503 while the server starts.
        self.directory: Directory | None = None
        self.location = location
        self._emit = emit
        self._on_dialogs = on_dialogs
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

    def bind(self, sip_thread: SipThread, timeout: float = 10.0) -> None:
        """Take the SIP address and start the loop; raises ``OSError`` if it is taken."""
        self._thread = sip_thread
        sip_thread.run(self._run)
        if not self._ready.wait(timeout):
            raise RuntimeError("the SIP thread did not start")
        if self._startup_error is not None:
            raise self._startup_error

    def open(self, directory: Directory, orphaned: Sequence[Dialog] = ()) -> None:
        """Serve: authenticate and route with ``directory``; first end the dialogs that a
        crash left up (BYE to each side, calls/dialogs.py)."""
        ED2.callFromThread(self._open, directory, tuple(orphaned))

    def _open(self, directory: Directory, orphaned: tuple[Dialog, ...]) -> None:
        if orphaned:
            self._end_dialogs(orphaned, "sip.ended_dialogs_left_by_a_crash")
        self.directory = directory

    def end_dialogs(self, dialogs: Sequence[Dialog]) -> None:
        """While serving, what ``open`` does at start: BYE to each dialog, here those of a
        dead node of the cluster that this one took over (calls/dialogs.py)."""
        ED2.callFromThread(self._end_dialogs, tuple(dialogs), "sip.ended_dialogs_taken_over")

    def _end_dialogs(self, dialogs: tuple[Dialog, ...], event: str) -> None:
        for dialog in dialogs:
            self._safely(send_bye, self.global_config["_sip_tm"], dialog,
                         partial(_bye_answered, dialog))
        log.warning(event, count=len(dialogs))

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
            # No SO_REUSEADDR: with it a second server bound the same UDP port and both
            # answered half of the calls 480. sippy's own "dry run" bind meant to catch that
            # loses its flags when the options are copied.
            Udp_server_opts.flags = 0
            self.global_config = {
                "_sip_address": host,
                "_sip_port": port,
                "_sip_logger": _SipLog(self._trace),
            }
            self.global_config["_sip_tm"] = SipTransactionManager(
                self.global_config, self._guarded_request
            )
        except BaseException as exc:  # reported to bind() on the other thread
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
                self._safely(bridge.end, HangupReason.FAILED)
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
                self._safely(bridge.end, HangupReason.FAILED)
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
                bridge.feed(Refuse(at_us=now_us(), status=status, phrase=phrase, reason=None))
            case Hangup(reason=reason):
                bridge.end(reason)
            case Connect():
                self._connect(bridge, command)
            case Hold(side=side):
                bridge.feed(HoldSide(at_us=now_us(), side=side))
            case Resume(side=side):
                bridge.feed(ResumeSide(at_us=now_us(), side=side))
            case Transfer():
                bridge.feed(TransferTo(at_us=now_us(), keep=command.keep, dial=self._dial(
                    command.target, command)))
            case Merge():
                self._merge(bridge, command)
            case RingUser():  # handled above: it creates the bridge
                pass
            case _:
                assert_never(command)

    def _devices(self, user_id: UserId) -> tuple[Target, ...]:
        return tuple(_target(binding) for binding in self.location.devices(user_id))

    def _ring_user(self, command: RingUser) -> None:
        devices = self._devices(command.user_id)
        if not devices:  # unregistered since the API checked
            self._emit(CallEnded(call_id=command.call_id, reason=HangupReason.UNAVAILABLE,
                                 at_us=now_us()))
            return
        machine, actions = BridgeMachine.click_to_dial(command.call_id, RingDevices(
            at_us=now_us(), devices=devices, display_name=command.display_name,
            shown_number=command.shown_number, auto_answer=command.auto_answer,
            timeout=command.timeout))
        bridge = self._new_bridge(machine)
        bridge.start(actions)

    def _connect(self, bridge: Bridge, command: Connect) -> None:
        dial = self._dial(command.target, command)
        if not dial.targets:
            bridge.feed(Refuse(at_us=now_us(), status=480, phrase="Temporarily Unavailable",
                               reason=HangupReason.UNAVAILABLE))
            return
        bridge.feed(dial)

    def _dial(self, target: CommandTarget, command: Connect | Transfer) -> DialTargets:
        """Where ``target`` is rung now: a user's registered devices, or the trunk."""
        targets: tuple[Target, ...]
        match target:
            case UserDevices(user_id=user_id):
                targets = self._devices(user_id)
            case TrunkNumber(host=host, port=port):
                targets = (Target(next_hop=(host, port), contact=None),)
            case _:
                assert_never(target)
        return DialTargets(
            at_us=now_us(), targets=targets, caller_number=command.caller_number,
            caller_name=command.caller_name, callee_number=command.callee_number,
            ring_timeout=command.ring_timeout)

    def _merge(self, staying: Bridge, command: Merge) -> None:
        """Attended transfer: the other call gives its party's dialog to this one, and
        from then on its call id names this bridge too."""
        going = self.bridges.get(command.other_call_id)
        dialog = None if going is None or going is staying else going.hand_over(
            command.other_user_side)
        if going is None or dialog is None:  # it ended meanwhile: nothing to join
            staying.end(HangupReason.FAILED)
            return
        self.bridges[command.other_call_id] = staying
        staying.aliases = (*staying.aliases, command.other_call_id, *going.aliases)
        for alias in going.aliases:
            self.bridges[alias] = staying
        staying.take_over(command.user_side, dialog)

    def _new_bridge(self, machine: BridgeMachine, caller: Any = None,
                    offer: Any = None) -> Bridge:
        bridge = Bridge(machine, self.new_ua, self._emit, now_us, self._bridge_done,
                        self._on_dialogs, caller=caller, offer=offer)
        self.bridges[machine.call_id] = bridge
        return bridge

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
            case validate.Drop(reason=reason):
                self._drop(req, sip_t, reason)
                return None
            case validate.Refuse(status=status, reason=reason):
                resp = req.genResponse(status, reason)
                resp.sipver = "SIP/2.0"  # the one version we speak, even to a SIP/3.0 request
                return (resp, None, None)
        method = req.getMethod()
        if self.directory is None:  # still starting (bound, but the directory is not loaded)
            resp = req.genResponse(503, "Service Unavailable")
            resp.appendHeader(SipHeader(name="retry-after", bodys="5"))
            return (resp, None, None)
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
        address = source_of(req, self.edge)
        source = address[0]
        user = req.getHFBody("to").getUrl().username or ""
        resp, failed = self.registrar.handle(req, address, path_of(req, self.edge))
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
        directory = self.directory
        assert directory is not None  # _on_request answers 503 until open()
        host, port = source_of(req, self.edge)
        trunk = directory.trunk_for_source(host, port)
        call_id = new_call_id()
        if trunk is not None:
            from_url = req.getHFBody("from").getUrl()
            offered = CallOffered(
                call_id=call_id,
                tenant_id=trunk.tenant_id,
                dialled=req.getRURI().username or "",
                at_us=now_us(),
                from_number=from_url.username or "anonymous",
                from_name=req.getHFBody("from").getUri().name or "",
            )
        else:
            user = req.getHFBody("from").getUrl().username or ""
            verdict = authenticate(directory, req, "from")
            if not isinstance(verdict, Authenticated):
                if isinstance(verdict, Challenge):
                    resp = req.genResponse(401, "Unauthorized")
                    resp.appendHeaders(challenge_headers(verdict.realm, self.algorithms))
                else:
                    self.tarpit.failed(host, user)
                    resp = req.genResponse(403, "Forbidden")
                return self._answer_maybe_later(resp, sip_t, host, user)
            self.tarpit.succeeded(host, user)
            offered = CallOffered(
                call_id=call_id,
                tenant_id=verdict.tenant.id,
                dialled=req.getRURI().username or "",
                at_us=now_us(),
                from_user=verdict.user.id,
            )
        holder: dict[str, Callable[[Any, Any], None]] = {}

        def caller_event(event: Any, ua: Any) -> None:
            listener = holder.get("listener")
            if listener is None and is_new_call(event):  # the INVITE itself
                bridge = self._new_bridge(BridgeMachine.offered(call_id), caller=ua,
                                          offer=offer_of(event))
                holder["listener"] = bridge.listener(CALLER)
                self._emit(offered)
            elif listener is not None:
                self._safely(listener, event, ua)

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
        bridge = self.bridges.pop(call_id, None)
        for alias in bridge.aliases if bridge is not None else ():
            if self.bridges.get(alias) is bridge:
                del self.bridges[alias]

    def _safely(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("sip.callback_failed", callback=getattr(fn, "__name__", repr(fn)))


def _target(binding: Binding) -> Target:
    """Where a device is rung: straight to where it registered from, or, registered
    through a proxy (the edge), to the first Path URI with the Path as the Route set."""
    if binding.path:
        return Target(next_hop=first_hop(binding.path), contact=binding.contact,
                      route=binding.path)
    return Target(next_hop=binding.source, contact=binding.contact)


def _bye_answered(dialog: Dialog, status: int) -> None:
    log.info("sip.crash_dialog_ended", call_id=dialog.sip_call_id, status=status)


def _method(req: Any) -> str:
    try:
        return str(req.getMethod())
    except Exception:
        return "?"
