"""A bridged call on the SIP side: the caller's dialog and the callee's forked dialogs.

Runs on the SIP thread only. It does the SIP mechanics the domain asked for with
``Connect``: ring every target at once with the caller's offer, relay the first ringing,
keep the first answer and CANCEL the rest, then pass re-INVITEs, answers and BYEs between
the two sides. It reports plain signals (ringing, answered, hold, ended) and decides
nothing about users or routing.

For a click-to-dial the "caller" is the user's own phone, which we call first (``RingUser``)
with no SDP (late offer). When it answers, its 200 carries its offer: we ACK at once with
that offer turned ``a=inactive`` (so the phone does not time out while the destination
rings), call the destination with the phone's offer, and when the destination answers,
re-INVITE the phone with the destination's SDP (SIP-NOTES.md, "Click-to-dial").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sippy.CCEvents import (
    CCEventConnect,
    CCEventDisconnect,
    CCEventFail,
    CCEventPreConnect,
    CCEventRing,
    CCEventTry,
    CCEventUpdate,
)
from sippy.MsgBody import MsgBody
from sippy.SipHeader import SipHeader
from sippy.SipURL import SipURL
from sippy.Time.Timeout import Timeout

from hookswitch.calls.commands import (
    CallAnswered,
    CalleeRinging,
    CallEnded,
    HoldChanged,
    Signal,
    UserPickedUp,
)
from hookswitch.calls.dialogs import DialogRecord, DialogsClosed, DialogsSaved
from hookswitch.calls.ids import CallId
from hookswitch.calls.leg import HangupReason
from hookswitch.sip.dialogs import snapshot
from hookswitch.sip.translate import event_body, failure_status, reason_for_status

_HOLD = re.compile(r"^(a=(sendonly|inactive)|c=IN IP[46] (0\.0\.0\.0|::))\s*$", re.M)
# Best final status when every fork failed (RFC 3261 16.7: 6xx first, then busy-like).
_PREFERENCE = (600, 603, 486, 480, 408)


def sdp_holds(body: Any) -> bool:
    """An offer that puts the other side on hold (sendonly/inactive or c=0.0.0.0)."""
    return body is not None and _HOLD.search(str(body)) is not None


class DialDevice(CCEventTry):  # type: ignore[misc]
    """A CCEventTry whose INVITE goes to a registered Contact rather than the next hop."""

    target: Any = None

    def onUacSetupComplete(self, uac: Any) -> None:
        if self.target is not None:
            uac.rTarget = self.target.getCopy()


def inactive_copy(body: Any) -> Any:
    """The same SDP with every stream ``a=inactive`` (an answer that sends no media)."""
    text = str(body)
    lines = [line for line in text.splitlines() if line.strip()]
    out: list[str] = []
    for line in lines:
        if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            continue
        out.append(line)
        if line.startswith("m="):
            out.append("a=inactive")
    return MsgBody("\r\n".join(out) + "\r\n")


AUTO_ANSWER_HEADERS = (
    ("Call-Info", "<sip:127.0.0.1>;answer-after=0"),
    ("Alert-Info", "<http://127.0.0.1>;info=alert-autoanswer;delay=0"),
    ("P-Auto-Answer", "normal"),
)


class Bridge:
    def __init__(
        self,
        call_id: CallId,
        caller: Any,
        offer_body: Any,
        emit: Callable[[Signal], object],
        now_us: Callable[[], int],
        on_done: Callable[[CallId], None],
        on_dialogs: Callable[[DialogRecord], object] = lambda record: None,
    ) -> None:
        self.call_id = call_id
        # The dialog with the calling phone or trunk; for a click-to-dial, the user's phone
        # once it picked up (None before).
        self.caller = caller
        self.offer_body = offer_body  # the caller's SDP, relayed to the callee
        self.click_to_dial = caller is None
        self.user_forks: list[Any] = []  # click-to-dial: the user's phones, before pick-up
        self._swallow_answer = False
        self.forks: list[Any] = []
        self.callee: Any = None
        self._emit = emit
        self._now_us = now_us
        self._on_done = on_done
        self._on_dialogs = on_dialogs
        self._dialogs_saved = False
        self._ringing = False
        self._held = {"caller": False, "callee": False}
        self._fail_statuses: list[int] = []
        self._ring_timer: Any = None
        self.done = False

    # --- commands ------------------------------------------------------------------------

    def ring_user(
        self,
        new_ua: Callable[..., Any],
        devices: list[tuple[tuple[str, int], str]],
        display_name: str,
        shown_number: str,
        auto_answer: bool,
        timeout: float,
    ) -> None:
        """Click-to-dial, step one: INVITE (no SDP) every device of the user at once."""
        for next_hop, contact in devices:
            ua = new_ua(self._user_fork_event, nh_address=next_hop)
            event = DialDevice((None, shown_number, shown_number, None, None, display_name))
            event.target = SipURL(url=contact)
            if auto_answer:
                event.extra_headers = tuple(
                    SipHeader(name=name, bodys=value) for name, value in AUTO_ANSWER_HEADERS
                )
            self.user_forks.append(ua)
            ua.recvEvent(event)
        self._ring_timer = Timeout(self._user_timeout, timeout)

    def _user_fork_event(self, event: Any, ua: Any) -> None:
        if self.done:
            return
        if ua is self.caller:  # the phone that picked up is now the caller's side
            self.caller_event(event, ua)
            return
        if self.caller is not None or ua not in self.user_forks:
            return
        if isinstance(event, CCEventPreConnect | CCEventConnect):
            self.user_forks.remove(ua)
            self._cancel(self.user_forks)
            self.user_forks = []
            self._stop_ring_timer()
            self.caller = ua
            self.offer_body = ua.rSDP.getCopy() if ua.rSDP is not None else None
            if isinstance(event, CCEventPreConnect) and self.offer_body is not None:
                ua.recvEvent(CCEventConnect((200, "OK", inactive_copy(self.offer_body))))
            self._emit(UserPickedUp(call_id=self.call_id, at_us=self._now_us()))
            self._save_dialogs()
        elif isinstance(event, CCEventFail | CCEventDisconnect):
            self.user_forks.remove(ua)
            self._fail_statuses.append(failure_status(event))
            if not self.user_forks:
                self._finish(reason_for_status(self._best_failure()))

    def _user_timeout(self) -> None:
        self._ring_timer = None
        if self.done or self.caller is not None:
            return
        self._cancel(self.user_forks)
        self.user_forks = []
        self._finish(HangupReason.NO_ANSWER)

    def dial(
        self,
        new_ua: Callable[..., Any],
        targets: list[tuple[tuple[str, int], str | None]],
        caller_number: str,
        caller_name: str,
        callee_number: str,
        ring_timeout: float,
    ) -> None:
        """Ring every (next hop, contact URI) at once; the caller hears the first ringing."""
        offer_body = self.offer_body
        for next_hop, contact in targets:
            ua = new_ua(self._fork_event, nh_address=next_hop)
            event = DialDevice(
                (None, caller_number, callee_number,
                 offer_body.getCopy() if offer_body is not None else None, None, caller_name)
            )
            if contact is not None:
                event.target = SipURL(url=contact)
            self.forks.append(ua)
            ua.recvEvent(event)
        self._ring_timer = Timeout(self._ring_timeout, ring_timeout)

    def reject(self, status: int, phrase: str, reason: HangupReason | None) -> None:
        self._end_caller(status, phrase)
        self._finish(reason)

    def hangup(self, reason: HangupReason) -> None:
        """CANCEL whatever still rings, BYE whatever is answered, on both sides."""
        if self.callee is not None:
            self.callee.recvEvent(CCEventDisconnect())
        self._cancel_forks()
        self._cancel(self.user_forks)
        self.user_forks = []
        self._end_caller(487, "Request Terminated")
        self._finish(reason)

    def _end_caller(self, status: int, phrase: str) -> None:
        """Refuse the caller while its INVITE is pending; BYE it once it is answered."""
        if self.caller is None:
            return
        if self.caller.isConnected():
            self.caller.recvEvent(CCEventDisconnect())
        else:
            self.caller.recvEvent(CCEventFail((status, phrase)))

    # --- events from the two sides ------------------------------------------------------

    def caller_event(self, event: Any, ua: Any) -> None:
        if self.done:
            return
        if isinstance(event, CCEventDisconnect | CCEventFail):
            if self.callee is not None:
                self.callee.recvEvent(CCEventDisconnect())
                self._finish(HangupReason.COMPLETED)
            else:
                self._cancel_forks()
                self._finish(HangupReason.CANCELLED)
            return
        if isinstance(event, CCEventConnect) and self._swallow_answer:
            # The phone's answer to the re-INVITE that connected it: the callee already
            # has what it needs (it answered the phone's first offer).
            self._swallow_answer = False
            return
        if isinstance(event, CCEventUpdate):
            self._note_hold("caller", event.getData())
        if self.callee is not None:
            self.callee.recvEvent(event)
            if isinstance(event, CCEventUpdate):
                self._save_dialogs()  # the re-INVITE used up a CSeq of the callee's dialog

    def _fork_event(self, event: Any, ua: Any) -> None:
        if self.done:
            return
        if self.callee is None:
            self._fork_before_answer(event, ua)
        elif ua is self.callee:
            if isinstance(event, CCEventDisconnect | CCEventFail):
                self.caller.recvEvent(CCEventDisconnect())
                self._finish(HangupReason.COMPLETED)
                return
            if isinstance(event, CCEventUpdate):
                self._note_hold("callee", event.getData())
            self.caller.recvEvent(event)
            if isinstance(event, CCEventUpdate):
                self._save_dialogs()

    def _fork_before_answer(self, event: Any, ua: Any) -> None:
        if ua not in self.forks:
            return
        if isinstance(event, CCEventRing):
            if not self._ringing:
                self._ringing = True
                if not self.click_to_dial:  # the user's phone is answered already
                    self.caller.recvEvent(event)
                self._emit(CalleeRinging(call_id=self.call_id, at_us=self._now_us()))
        elif isinstance(event, CCEventConnect | CCEventPreConnect):
            self.callee = ua
            self.forks.remove(ua)
            self._cancel_forks()
            self._stop_ring_timer()
            if self.click_to_dial:
                self._swallow_answer = True
                self.caller.recvEvent(CCEventUpdate(event_body(event)))
            else:
                self.caller.recvEvent(event)
            self._emit(CallAnswered(call_id=self.call_id, at_us=self._now_us()))
            self._save_dialogs()
        elif isinstance(event, CCEventFail | CCEventDisconnect):
            self.forks.remove(ua)
            self._fail_statuses.append(failure_status(event))
            if not self.forks:
                status = self._best_failure()
                self._end_caller(status, _phrase(status))
                self._finish(reason_for_status(status))

    def _ring_timeout(self) -> None:
        self._ring_timer = None
        if self.done or self.callee is not None:
            return
        self._cancel_forks()
        self._end_caller(480, "No Answer")
        self._finish(HangupReason.NO_ANSWER)

    # --- helpers ---------------------------------------------------------------------------

    def _save_dialogs(self) -> None:
        """Report the answered dialogs, so that a crash can still end them (calls/dialogs.py)."""
        dialogs = tuple(d for d in (snapshot(self.caller), snapshot(self.callee)) if d)
        if dialogs:
            self._dialogs_saved = True
            self._on_dialogs(DialogsSaved(call_id=self.call_id, dialogs=dialogs))

    def _note_hold(self, side: str, body: Any) -> None:
        before = any(self._held.values())
        self._held[side] = sdp_holds(body)
        after = any(self._held.values())
        if before != after:
            self._emit(HoldChanged(call_id=self.call_id, held=after, at_us=self._now_us()))

    def _cancel_forks(self) -> None:
        forks, self.forks = self.forks, []
        self._cancel(forks)

    @staticmethod
    def _cancel(forks: list[Any]) -> None:
        for ua in forks:
            ua.recvEvent(CCEventDisconnect())

    def _stop_ring_timer(self) -> None:
        if self._ring_timer is not None:
            self._ring_timer.cancel()
            self._ring_timer = None

    def _best_failure(self) -> int:
        for status in _PREFERENCE:
            if status in self._fail_statuses:
                return status
        return min(self._fail_statuses, default=480)

    def _finish(self, reason: HangupReason | None) -> None:
        if self.done:
            return
        self.done = True
        self._stop_ring_timer()
        if reason is not None:
            self._emit(CallEnded(call_id=self.call_id, reason=reason, at_us=self._now_us()))
        if self._dialogs_saved:
            self._on_dialogs(DialogsClosed(call_id=self.call_id))
        self._on_done(self.call_id)


_PHRASES = {
    486: "Busy Here",
    600: "Busy Everywhere",
    603: "Decline",
    480: "Temporarily Unavailable",
    408: "Request Timeout",
    404: "Not Found",
}


def _phrase(status: int) -> str:
    return _PHRASES.get(status, "Call Failed")
