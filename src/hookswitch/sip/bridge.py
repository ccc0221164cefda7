"""Drives one call's bridge state machine (``bridge_state.py``) with sippy.

Runs on the SIP thread only. It owns what the machine only names: the sippy UAs (the
caller's dialog, the user's devices, the callee's forks), the caller's SDP offer, and the
timers. sippy events become machine inputs in ``translate.py``; the machine's actions become
sippy calls here. Nothing is decided here.

For a click-to-dial the "caller" is the user's own phone, which we call first with no SDP
(late offer). When it answers, its 200 carries its offer: we ACK at once with that offer
turned ``a=inactive`` (so the phone does not time out while the destination rings), call the
destination with the phone's offer, and when the destination answers, re-INVITE the phone
with the destination's SDP (SIP-NOTES.md, "Click-to-dial").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, assert_never

import structlog
from sippy.CCEvents import CCEventConnect, CCEventDisconnect, CCEventFail, CCEventTry, CCEventUpdate
from sippy.SipHeader import SipHeader
from sippy.SipURL import SipURL
from sippy.Time.Timeout import Timeout

from hookswitch.calls.commands import Signal
from hookswitch.calls.dialogs import DialogRecord, DialogsClosed, DialogsSaved
from hookswitch.calls.ids import CallId
from hookswitch.calls.leg import HangupReason, Side
from hookswitch.sip.bridge_state import (
    CALLER,
    AcceptLateOffer,
    Action,
    Adopt,
    BecomeCaller,
    BridgeInput,
    BridgeMachine,
    BridgeState,
    CallDevice,
    CallFork,
    Disconnect,
    EndCall,
    Failed,
    Finished,
    HandOver,
    IllegalTransition,
    Peer,
    RefuseCaller,
    Relay,
    Release,
    Reoffer,
    ReofferCaller,
    Report,
    SaveDialogs,
    StartTimer,
    StopTimer,
    TakeOver,
    Target,
    TimedOut,
    Timer,
)
from hookswitch.sip.dialogs import snapshot
from hookswitch.sip.edge import routes
from hookswitch.sip.sdp import continue_origin, inactive_copy, with_direction
from hookswitch.sip.translate import bridge_input, event_body, is_established, with_body

log = structlog.get_logger("hookswitch.sip")

AUTO_ANSWER_HEADERS = (
    ("Call-Info", "<sip:127.0.0.1>;answer-after=0"),
    ("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer;delay=0"),
    ("P-Auto-Answer", "normal"),
)


class DialDevice(CCEventTry):  # type: ignore[misc]
    """A CCEventTry whose INVITE goes to a registered Contact rather than the next hop,
    through the device's Path when it has one (the next hop is then the first Path URI:
    loose routing, so the Request-URI stays the Contact)."""

    target: Any = None
    route: tuple[str, ...] = ()

    def onUacSetupComplete(self, uac: Any) -> None:
        if self.target is not None:
            uac.rTarget = self.target.getCopy()
        if self.route:
            uac.routes = routes(self.route)


NewUa = Callable[..., Any]


class Bridge:
    __slots__ = ("_busy", "_emit", "_inputs", "_new_ua", "_now_us", "_on_dialogs", "_on_done",
                 "_released", "_timers", "_uas", "aliases", "call_id", "machine", "offer")

    def __init__(
        self,
        machine: BridgeMachine,
        new_ua: NewUa,
        emit: Callable[[Signal], object],
        now_us: Callable[[], int],
        on_done: Callable[[CallId], None],
        on_dialogs: Callable[[DialogRecord], object] = lambda record: None,
        caller: Any = None,
        offer: Any = None,
    ) -> None:
        self.machine = machine
        self.call_id = machine.call_id
        self._new_ua = new_ua
        self._emit = emit
        self._now_us = now_us
        self._on_done = on_done
        self._on_dialogs = on_dialogs
        self._uas: dict[Peer, Any] = {CALLER: caller} if caller is not None else {}
        self.offer = offer  # the caller's SDP, offered to the callee
        self._timers: dict[Timer, Any] = {}
        self._inputs: list[tuple[BridgeInput, Any]] = []  # a deque costs 10 times more
        self._busy = False
        self._released: Any = None  # a dialog given away by an attended transfer
        self.aliases: tuple[CallId, ...] = ()  # the calls merged into this one

    @property
    def done(self) -> bool:
        return self.machine.state is BridgeState.ENDED

    # --- inputs ----------------------------------------------------------------------------

    def listener(self, peer: Peer) -> Callable[[Any, Any], None]:
        """The sippy event callback of the UA that plays ``peer``."""

        def on_event(event: Any, ua: Any) -> None:
            # A device that picked up plays the caller from then on (BecomeCaller).
            played = CALLER if self._uas.get(CALLER) is ua else peer
            named = bridge_input(event, played, self._now_us(), is_established(ua))
            if named is not None:
                self.feed(named, event)

        return on_event

    def end(self, reason: HangupReason) -> None:
        self.feed(EndCall(at_us=self._now_us(), reason=reason))

    def hand_over(self, user_side: Side) -> Any:
        """Attended transfer, the call that goes: hang up the user, return the other
        party's dialog (None if this call could not give it: it ended meanwhile)."""
        self.feed(HandOver(at_us=self._now_us(), user_side=user_side))
        released, self._released = self._released, None
        return released

    def take_over(self, user_side: Side, dialog: Any) -> None:
        """Attended transfer, the call that stays: ``dialog`` replaces the user."""
        self.feed(TakeOver(at_us=self._now_us(), user_side=user_side), dialog)

    def feed(self, event: BridgeInput, raw: Any = None) -> None:
        """Hand an input to the machine and carry out its actions. Inputs that arrive while
        actions run (sippy can call back at once) wait their turn, in order."""
        self._inputs.append((event, raw))
        if self._busy:
            return
        self._busy = True
        try:
            while self._inputs:
                self._step(*self._inputs.pop(0))
        finally:
            self._busy = False

    def start(self, actions: list[Action]) -> None:
        """Carry out actions that answer no input: those the machine was created with
        (click-to-dial), or a re-offer put off to the next turn of sippy's loop."""
        self._busy = True
        try:
            self._run(actions, None)
            while self._inputs:
                self._step(*self._inputs.pop(0))
        finally:
            self._busy = False

    def _step(self, event: BridgeInput, raw: Any) -> None:
        try:
            actions = self.machine.handle(event)
        except IllegalTransition:
            log.exception("sip.bridge_illegal_input", call_id=self.call_id)
            if not self.done:
                self._inputs.append((EndCall(at_us=self._now_us(),
                                             reason=HangupReason.FAILED), None))
            return
        self._run(actions, raw)

    def _run(self, actions: list[Action], raw: Any) -> None:
        for action in actions:
            try:
                self._do(action, raw)
            except Exception:
                log.exception("sip.bridge_action_failed", call_id=self.call_id,
                              action=type(action).__name__)
                if isinstance(action, CallDevice | CallFork):  # that peer never rang
                    self._inputs.append((Failed(at_us=self._now_us(), peer=action.peer,
                                                status=500), None))

    # --- actions ---------------------------------------------------------------------------

    def _do(self, action: Action, raw: Any) -> None:
        match action:
            case CallDevice(peer=peer, target=target):
                event = DialDevice((None, action.shown_number, action.shown_number, None, None,
                                    action.display_name))
                if action.auto_answer:
                    event.extra_headers = tuple(
                        SipHeader(name=name, bodys=value) for name, value in AUTO_ANSWER_HEADERS
                    )
                self._call(peer, target, event)
            case CallFork(peer=peer, target=target):
                offer = self.offer.getCopy() if self.offer is not None else None
                self._call(peer, target, DialDevice(
                    (None, action.caller_number, action.callee_number, offer, None,
                     action.caller_name)))
            case Disconnect(peer=peer):
                # Out of the call: what its UA says from now on (a 487, a BYE's answer)
                # is not ours to hear, and its name may go to another dialog.
                ua = self._uas.pop(peer, None)
                if ua is not None:
                    ua.event_cb = None
                    ua.recvEvent(CCEventDisconnect())
            case RefuseCaller(status=status, phrase=phrase):
                self._uas[CALLER].recvEvent(CCEventFail((status, phrase)))
            case Relay(to=peer):
                ua = self._uas[peer]
                body = event_body(raw)
                if body is not None:  # the peer sees one SDP session (RFC 3264 8)
                    raw = with_body(raw, continue_origin(body, ua.lSDP))
                ua.recvEvent(raw)
            case BecomeCaller(peer=peer, resume=resume):
                ua = self._uas.pop(peer)
                self._uas[CALLER] = ua
                sdp = ua.rSDP
                self.offer = None if sdp is None else (
                    with_direction(sdp, "sendrecv") if resume else sdp.getCopy())
            case Reoffer(after_ack=True):
                Timeout(self._reoffer_now, 0, 1, replace(action, after_ack=False))
            case Reoffer(to=to, source=source, direction=direction):
                sdp = self._uas[source].rSDP
                if sdp is not None:
                    self._reoffer(to, with_direction(sdp, direction.value))
            case Release(peer=peer):
                self._released = self._uas.pop(peer)
                self._released.event_cb = None
            case Adopt(peer=peer):
                self._uas[peer] = raw
                raw.event_cb = self.listener(peer)
            case AcceptLateOffer():
                if self.offer is not None:
                    self._uas[CALLER].recvEvent(
                        CCEventConnect((200, "OK", inactive_copy(self.offer))))
            case ReofferCaller():
                self._reoffer(CALLER, event_body(raw))
            case StartTimer(timer=timer, seconds=seconds):
                self._stop_timer(timer)
                self._timers[timer] = Timeout(self._timed_out, seconds, 1, timer)
            case StopTimer(timer=timer):
                self._stop_timer(timer)
            case Report(signal=signal):
                self._emit(signal)
            case SaveDialogs():
                dialogs = tuple(d for d in (snapshot(self._uas.get(CALLER)),
                                            snapshot(self._callee_ua())) if d)
                if dialogs:
                    self._on_dialogs(DialogsSaved(call_id=self.call_id, dialogs=dialogs))
            case Finished(dialogs_saved=saved):
                for timer in list(self._timers):
                    self._stop_timer(timer)
                if saved:
                    self._on_dialogs(DialogsClosed(call_id=self.call_id))
                self._on_done(self.call_id)
            case _:
                assert_never(action)

    def _call(self, peer: Peer, target: Target, event: Any) -> None:
        if target.contact is not None:
            event.target = SipURL(url=target.contact)
        event.route = target.route
        ua = self._new_ua(self.listener(peer), nh_address=target.next_hop)
        self._uas[peer] = ua
        ua.recvEvent(event)

    def _reoffer_now(self, action: Reoffer) -> None:
        """A re-offer put off to the next turn of sippy's loop; the call may be gone."""
        if not self.done and action.to in self._uas and action.source in self._uas:
            self.start([action])

    def _reoffer(self, peer: Peer, body: Any) -> None:
        """re-INVITE ``peer`` with ``body``, as the next SDP of the session it knows."""
        ua = self._uas[peer]
        ua.recvEvent(CCEventUpdate(continue_origin(body, ua.lSDP)))

    def _callee_ua(self) -> Any:
        callee = self.machine.callee
        return self._uas.get(callee) if callee is not None else None

    def _timed_out(self, timer: Timer) -> None:
        self._timers.pop(timer, None)
        self.feed(TimedOut(at_us=self._now_us(), timer=timer))

    def _stop_timer(self, timer: Timer) -> None:
        running = self._timers.pop(timer, None)
        if running is not None:
            running.cancel()
