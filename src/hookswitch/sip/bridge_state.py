"""The SIP side of one call as a pure state machine: named inputs in, actions out.

No sippy here and no I/O: ``sip/bridge.py`` feeds it what ``sip/translate.py`` made of
sippy's events (plus the domain's commands and the timers) and carries out the actions it
returns. The time of every input is given from outside.

Rules (the table ``TRANSITIONS`` below says the same, pair by pair):

- A call has a *caller* side, the dialog that started it (a phone's or a trunk's INVITE; in
  a click-to-dial, the user's own phone once it picked up), and a *callee* side: the first
  of the forks (the target's devices, rung at once) that answered.
- OFFERED: a phone's INVITE is in; the domain says ``Dial`` (call the targets) or
  ``Refuse``.
- RINGING_USER: click-to-dial, first half. The user's devices ring with no SDP (late
  offer). The first to answer becomes the caller and is answered at once with its own offer
  made ``inactive`` (USER_ANSWERED); the other devices are cancelled.
- DIALING: the targets are called with the caller's offer. The first 180 makes the call
  ALERTING and is relayed to a caller still waiting for an answer (a click-to-dial user's
  phone is answered already: it hears nothing). Later 180s change nothing.
- The first fork to answer wins; the other forks are cancelled. A caller still waiting gets
  that answer relayed (CONNECTED). A caller whose dialog is up already (click-to-dial) is
  re-offered the callee's SDP, and its answer to that re-INVITE goes nowhere (CONNECTING,
  then CONNECTED).
- CONNECTED: re-INVITEs and their answers are relayed between the two sides. An offer that
  holds (sendonly, inactive, c=0.0.0.0) from either side makes the call held until both
  sides have resumed.
- CONNECTED -> HELD by the hold command for the user on one side: the other side is
  re-offered the user's SDP ``sendonly``, the user's phone the other side's SDP
  ``inactive`` (so it shows the call held); resume (HELD, or CONNECTED held by a phone)
  re-offers both ``sendrecv``. The answers to re-INVITEs we made up are ours: not relayed
  (``OWN_ANSWERED``); a re-offer to a peer that has not answered our last one waits for
  that answer. Holding a held call, or resuming one nobody holds, does nothing. A hold in
  CONNECTING (the caller's re-INVITE with the callee's answer still pending) goes to HELD
  at once: the caller's answer to that re-INVITE is then ours, and its hold re-offer
  follows it; a resume there does nothing (nobody holds yet).
- A blind transfer (CONNECTING, CONNECTED or HELD -> DIALING) hangs up the user's side,
  makes the other side the caller (its dialog is up: ``caller_up``) and calls the targets
  with its SDP made ``sendrecv``; from there it is a click-to-dial after pick-up: the
  answer is re-offered to the caller, a failure or a timeout hangs the caller up with that
  reason. A transfer to a user with no device ends the call ``unavailable`` at once.
- An attended transfer joins two calls of one user: the call that goes (``HAND_OVER``)
  hangs up the user and gives its other party away, and ends without a report (the domain
  knows); the call that stays (``TAKE_OVER``) hangs up the user and puts that party in the
  user's place, then re-offers each side the other's SDP ``sendrecv``.
- A phone's own transfer (REFER, answered 202 by sippy, which hangs that phone up) in an
  answered call (CONNECTING, CONNECTED, HELD -> REFERRED) is reported to the domain
  (``TransferAsked``), which answers with a blind transfer (REFERRED -> DIALING, the rows
  above) or a hangup; the other side waits, and what it sends meanwhile is dropped. A REFER
  in any other state is a hang-up.
- Every way a call ends (a BYE or CANCEL, every fork failing, a timeout, the hangup
  command, a refusal) leads to ENDED, once: CANCEL what rings, BYE what is answered, refuse
  a caller still waiting, report ``CallEnded`` with a reason. ENDED ignores everything.
- Events of a device or fork that lost, or of anything no longer in the call, are ignored
  (``STRAY``, an explicit self-loop in every state).
- A pair that is not in the table raises ``IllegalTransition`` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import assert_never

from hookswitch.calls.commands import (
    CallAnswered,
    CalleeRinging,
    CallEnded,
    HoldChanged,
    Signal,
    TransferAsked,
    UserPickedUp,
)
from hookswitch.calls.ids import CallId
from hookswitch.calls.leg import HangupReason, Side


class BridgeState(StrEnum):
    OFFERED = "offered"
    RINGING_USER = "ringing-user"
    USER_ANSWERED = "user-answered"
    DIALING = "dialing"
    ALERTING = "alerting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    HELD = "held"  # by the hold command (a phone's own hold is a flag of CONNECTED)
    REFERRED = "referred"  # a phone transferred the call (REFER): the domain says where
    ENDED = "ended"


class Role(StrEnum):
    CALLER = "caller"
    DEVICE = "device"  # one of the user's devices in a click-to-dial, before pick-up
    FORK = "fork"  # one of the callee's devices (or the trunk), then the callee


class Timer(StrEnum):
    RING = "ring"  # the callee's forks ring too long
    USER = "user"  # the click-to-dial user does not pick up


@dataclass(frozen=True, slots=True)
class Peer:
    """A SIP dialog of the call, as the driver names it: the caller, or a numbered device
    or fork."""

    role: Role
    number: int = 0


CALLER = Peer(Role.CALLER)


class Direction(StrEnum):
    """An SDP media direction (RFC 3264 5.1), for the offers the bridge makes up."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    INACTIVE = "inactive"


# --- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where to send an INVITE: the next hop, the Contact URI (None for a trunk), and the
    Route set (a device registered through a proxy: its Path, RFC 3327)."""

    next_hop: tuple[str, int]
    contact: str | None
    route: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RingDevices:
    """Click-to-dial, first half: ring every device of the user, with no SDP (what
    ``BridgeMachine.click_to_dial`` starts with; not an input)."""

    at_us: int
    devices: tuple[Target, ...]
    display_name: str
    shown_number: str
    auto_answer: bool
    timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DialTargets:
    """Call every target at once with the caller's offer; bridge the first to answer."""

    at_us: int
    targets: tuple[Target, ...]
    caller_number: str
    caller_name: str
    callee_number: str
    ring_timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldSide:
    """The hold command for the user on ``side`` of the call."""

    at_us: int
    side: Side


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeSide:
    """The resume command for the user on ``side`` of the call."""

    at_us: int
    side: Side


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferTo:
    """Blind transfer: hang up the user's side, call ``dial``'s targets for the party on
    ``keep``."""

    at_us: int
    keep: Side
    dial: DialTargets


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOver:
    """Attended transfer, the call that goes: hang up the user on ``user_side`` and give
    the other party to the call that stays (the driver passes its dialog on)."""

    at_us: int
    user_side: Side


@dataclass(frozen=True, slots=True, kw_only=True)
class TakeOver:
    """Attended transfer, the call that stays: the party handed over replaces the user on
    ``user_side`` (the driver brings its dialog along with this input)."""

    at_us: int
    user_side: Side


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse:
    """The domain refuses the call (404, 480, ...); ``reason`` None: it knows already."""

    at_us: int
    status: int
    phrase: str
    reason: HangupReason | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndCall:
    """Hang up everything (the hangup command, shutdown, an error)."""

    at_us: int
    reason: HangupReason


@dataclass(frozen=True, slots=True, kw_only=True)
class Ringing:
    at_us: int
    peer: Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class Answered:
    """A 200 to an INVITE: the first answer of a fork or device, or the answer to a
    re-INVITE that was relayed. ``late_offer``: the 200 carries the peer's offer (an INVITE
    sent without SDP), which still needs our answer. ``refused``: the peer refused a
    re-INVITE (488, 491) and its dialog stays up; that answer is relayed or dropped the
    same way."""

    at_us: int
    peer: Peer
    late_offer: bool = False
    refused: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """The peer refused or gave up before answering (a final status >= 300)."""

    at_us: int
    peer: Peer
    status: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HungUp:
    """BYE or CANCEL from the peer (or its dialog failed after the answer)."""

    at_us: int
    peer: Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class Referred:
    """REFER from the peer (a phone's transfer button): sippy has answered 202 and hung
    the peer up; ``destination`` is the user part of its Refer-To."""

    at_us: int
    peer: Peer
    destination: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reoffered:
    """A re-INVITE from the peer; ``holds``: its SDP puts the other side on hold."""

    at_us: int
    peer: Peer
    holds: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedOut:
    at_us: int
    timer: Timer


BridgeInput = (DialTargets | Refuse | EndCall | Ringing | Answered | Failed | HungUp
               | Reoffered | TimedOut | HoldSide | ResumeSide | TransferTo | HandOver
               | TakeOver | Referred)


class InputKind(StrEnum):
    """An input as the table sees it: the machine's own data refines some inputs (which
    peer it is now, whether it is the last fork) into distinct kinds."""

    DIAL = "dial"
    REFUSE = "refuse"
    END = "end"
    CALLER_ANSWERED = "caller-answered"  # the caller's answer to a re-INVITE we sent it
    CALLER_REOFFERED = "caller-reoffered"
    CALLER_ENDED = "caller-ended"
    DEVICE_RINGING = "device-ringing"
    DEVICE_ANSWERED = "device-answered"
    DEVICE_FAILED = "device-failed"
    LAST_DEVICE_FAILED = "last-device-failed"
    FORK_RINGING = "fork-ringing"
    FORK_ANSWERED = "fork-answered"  # the caller waits for this answer
    FORK_ANSWERED_CALLER_UP = "fork-answered-caller-up"  # the caller's dialog is up already
    FORK_FAILED = "fork-failed"
    LAST_FORK_FAILED = "last-fork-failed"
    CALLEE_ANSWERED = "callee-answered"  # the callee's answer to a re-INVITE we sent it
    CALLEE_REOFFERED = "callee-reoffered"
    CALLEE_ENDED = "callee-ended"
    RING_TIMEOUT = "ring-timeout"
    USER_TIMEOUT = "user-timeout"
    HOLD = "hold"
    RESUME = "resume"
    TRANSFER = "transfer"
    TRANSFER_NOWHERE = "transfer-nowhere"  # to a user with no device to ring
    HAND_OVER = "hand-over"
    TAKE_OVER = "take-over"
    OWN_ANSWERED = "own-answered"  # the answer to a re-INVITE the bridge made up
    REFERRED = "referred"  # REFER from a side of an answered call
    STRAY = "stray"  # from a peer that is not (or no longer) in the call


# --- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallDevice:
    """INVITE a user's device with no SDP, showing ``display_name``/``shown_number``."""

    peer: Peer
    target: Target
    display_name: str
    shown_number: str
    auto_answer: bool


@dataclass(frozen=True, slots=True)
class CallFork:
    """INVITE a callee's device (or the trunk) with the caller's offer."""

    peer: Peer
    target: Target
    caller_number: str
    caller_name: str
    callee_number: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    """CANCEL the peer if it still rings, BYE it if it answered."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class RefuseCaller:
    """Answer the caller's pending INVITE with a final failure."""

    status: int
    phrase: str


@dataclass(frozen=True, slots=True)
class Relay:
    """Pass the current input's SIP event (ringing, answer, re-INVITE) on to ``to``."""

    to: Peer


@dataclass(frozen=True, slots=True)
class BecomeCaller:
    """The device that picked up (or the party a transfer keeps) is the caller from now
    on; its SDP is the call's offer, made ``sendrecv`` when ``resume`` (it may be held)."""

    peer: Peer
    resume: bool = False


@dataclass(frozen=True, slots=True)
class Reoffer:
    """re-INVITE ``to`` with the last SDP of ``source``, every stream set to
    ``direction``. ``after_ack``: it waited for ``to``'s answer to our last re-INVITE, so
    it goes out once that answer has been ACKed (sippy ACKs after telling us)."""

    to: Peer
    source: Peer
    direction: Direction
    after_ack: bool = False


@dataclass(frozen=True, slots=True)
class Release:
    """Give the peer's dialog away (attended transfer): forget it without hanging up."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class Adopt:
    """The dialog given away by the other call plays ``peer`` here from now on."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class AcceptLateOffer:
    """Answer a device's late offer with that same SDP made ``inactive`` (no media yet)."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class ReofferCaller:
    """re-INVITE the caller with the SDP of the current input (the callee's answer)."""


@dataclass(frozen=True, slots=True)
class StartTimer:
    timer: Timer
    seconds: float


@dataclass(frozen=True, slots=True)
class StopTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Report:
    """A signal for the call domain."""

    signal: Signal


@dataclass(frozen=True, slots=True)
class SaveDialogs:
    """The answered dialogs changed: save them, so a crash can still end them."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The bridge is done: close its saved dialogs (if any) and forget it."""

    dialogs_saved: bool


Action = (CallDevice | CallFork | Disconnect | RefuseCaller | Relay | BecomeCaller
          | AcceptLateOffer | ReofferCaller | Reoffer | Release | Adopt | StartTimer
          | StopTimer | Report | SaveDialogs | Finished)


class IllegalTransition(Exception):
    """An input the table does not allow in the bridge's current state."""

    code = "illegal-bridge-transition"

    def __init__(self, state: BridgeState, kind: InputKind) -> None:
        super().__init__(f"bridge in state {state} cannot take {kind}")
        self.state = state
        self.kind = kind


S = BridgeState
K = InputKind

# The states that can still end a call, and what ends it from each.
_LIVE = (S.OFFERED, S.RINGING_USER, S.USER_ANSWERED, S.DIALING, S.ALERTING, S.CONNECTING,
         S.CONNECTED, S.HELD, S.REFERRED)
_WAITING = (S.DIALING, S.ALERTING)

TRANSITIONS: dict[BridgeState, dict[InputKind, BridgeState]] = {
    S.OFFERED: {
        K.DIAL: S.DIALING,
        K.REFUSE: S.ENDED,
        K.CALLER_ENDED: S.ENDED,
    },
    S.RINGING_USER: {
        K.DEVICE_RINGING: S.RINGING_USER,
        K.DEVICE_ANSWERED: S.USER_ANSWERED,
        K.DEVICE_FAILED: S.RINGING_USER,
        K.LAST_DEVICE_FAILED: S.ENDED,
        K.USER_TIMEOUT: S.ENDED,
        K.REFUSE: S.ENDED,
    },
    S.USER_ANSWERED: {
        K.DIAL: S.DIALING,
        K.REFUSE: S.ENDED,
        K.CALLER_REOFFERED: S.USER_ANSWERED,  # nobody to relay it to yet
        K.CALLER_ANSWERED: S.USER_ANSWERED,
        K.CALLER_ENDED: S.ENDED,
    },
    S.DIALING: {
        K.FORK_RINGING: S.ALERTING,
        K.FORK_ANSWERED: S.CONNECTED,
        K.FORK_ANSWERED_CALLER_UP: S.CONNECTING,
        K.FORK_FAILED: S.DIALING,
        K.LAST_FORK_FAILED: S.ENDED,
        K.RING_TIMEOUT: S.ENDED,
        K.CALLER_REOFFERED: S.DIALING,  # a picked-up user's phone: nobody to relay to yet
        K.CALLER_ANSWERED: S.DIALING,
        K.CALLER_ENDED: S.ENDED,
    },
    S.ALERTING: {
        K.FORK_RINGING: S.ALERTING,
        K.FORK_ANSWERED: S.CONNECTED,
        K.FORK_ANSWERED_CALLER_UP: S.CONNECTING,
        K.FORK_FAILED: S.ALERTING,
        K.LAST_FORK_FAILED: S.ENDED,
        K.RING_TIMEOUT: S.ENDED,
        K.CALLER_REOFFERED: S.ALERTING,
        K.CALLER_ANSWERED: S.ALERTING,
        K.CALLER_ENDED: S.ENDED,
    },
    S.CONNECTING: {
        K.CALLER_ANSWERED: S.CONNECTED,  # its answer to our re-INVITE: nothing to relay
        K.CALLER_REOFFERED: S.CONNECTING,
        K.CALLEE_REOFFERED: S.CONNECTING,
        K.CALLEE_ANSWERED: S.CONNECTING,
        K.CALLER_ENDED: S.ENDED,
        K.CALLEE_ENDED: S.ENDED,
    },
    S.CONNECTED: {
        K.CALLER_REOFFERED: S.CONNECTED,
        K.CALLER_ANSWERED: S.CONNECTED,
        K.CALLEE_REOFFERED: S.CONNECTED,
        K.CALLEE_ANSWERED: S.CONNECTED,
        K.CALLER_ENDED: S.ENDED,
        K.CALLEE_ENDED: S.ENDED,
        K.RING_TIMEOUT: S.CONNECTED,  # fired as the answer came in
        K.HOLD: S.HELD,
        K.RESUME: S.CONNECTED,  # re-offers only if a phone holds
    },
    S.HELD: {
        K.CALLER_REOFFERED: S.HELD,
        K.CALLER_ANSWERED: S.HELD,
        K.CALLEE_REOFFERED: S.HELD,
        K.CALLEE_ANSWERED: S.HELD,
        K.CALLER_ENDED: S.ENDED,
        K.CALLEE_ENDED: S.ENDED,
        K.RING_TIMEOUT: S.HELD,
        K.HOLD: S.HELD,  # held already: nothing to do
        K.RESUME: S.CONNECTED,
    },
    # The phone that sent REFER is gone; the other side waits for the domain's Transfer
    # (or Hangup). What else comes from it meanwhile is dropped.
    S.REFERRED: {
        K.CALLER_ENDED: S.ENDED,
        K.CALLEE_ENDED: S.ENDED,
        K.CALLER_REOFFERED: S.REFERRED,
        K.CALLEE_REOFFERED: S.REFERRED,
        K.CALLER_ANSWERED: S.REFERRED,
        K.CALLEE_ANSWERED: S.REFERRED,
        K.RING_TIMEOUT: S.REFERRED,
        K.HOLD: S.REFERRED,
        K.RESUME: S.REFERRED,
        K.TRANSFER: S.DIALING,
        K.TRANSFER_NOWHERE: S.ENDED,
    },
    S.ENDED: {},
}
# Both sides up: the user can hand its call on. Only hold, resume and an attended transfer
# make up re-INVITEs (a transfer forgets them): only CONNECTED and HELD get their answers.
for _state in (S.CONNECTING, S.CONNECTED, S.HELD):
    TRANSITIONS[_state][K.TRANSFER] = S.DIALING
    TRANSITIONS[_state][K.TRANSFER_NOWHERE] = S.ENDED
    TRANSITIONS[_state][K.HAND_OVER] = S.ENDED
    TRANSITIONS[_state][K.TAKE_OVER] = S.CONNECTED
    TRANSITIONS[_state][K.REFERRED] = S.REFERRED
TRANSITIONS[S.CONNECTED][K.OWN_ANSWERED] = S.CONNECTED
TRANSITIONS[S.HELD][K.OWN_ANSWERED] = S.HELD
TRANSITIONS[S.CONNECTING][K.HOLD] = S.HELD  # the caller's re-offer waits: module rules
TRANSITIONS[S.CONNECTING][K.RESUME] = S.CONNECTING  # nobody can hold yet: nothing to do
for _state in _LIVE:
    TRANSITIONS[_state][K.END] = S.ENDED
    TRANSITIONS[_state][K.STRAY] = _state
for _kind in K:
    TRANSITIONS[S.ENDED][_kind] = S.ENDED  # after the end, everything is ignored

# Best final status when every fork failed (RFC 3261 16.7: 6xx first, then busy-like).
_PREFERENCE = (600, 603, 486, 480, 408)

# RFC 3261 21.4/21.6 refusals and what a user would call them.
_FAILURE_REASONS: dict[int, HangupReason] = {
    486: HangupReason.BUSY,
    600: HangupReason.BUSY,
    603: HangupReason.REJECTED,
    403: HangupReason.REJECTED,
    408: HangupReason.NO_ANSWER,
    480: HangupReason.UNAVAILABLE,
    404: HangupReason.UNAVAILABLE,
    410: HangupReason.UNAVAILABLE,
    604: HangupReason.UNAVAILABLE,
    487: HangupReason.CANCELLED,
}

_PHRASES = {
    486: "Busy Here",
    600: "Busy Everywhere",
    603: "Decline",
    480: "Temporarily Unavailable",
    408: "Request Timeout",
    404: "Not Found",
}


def reason_for_status(status: int) -> HangupReason:
    if status in _FAILURE_REASONS:
        return _FAILURE_REASONS[status]
    if status >= 500:
        return HangupReason.FAILED
    return HangupReason.REJECTED


def phrase_for_status(status: int) -> str:
    return _PHRASES.get(status, "Call Failed")


@dataclass(slots=True)
class BridgeMachine:
    """One call's SIP side. Create it with ``offered`` (a phone's INVITE) or
    ``click_to_dial`` and feed it with ``handle``.

    Lists rather than sets, and two flags rather than a dict: a server holds thousands of
    these, and an empty set costs four times an empty list."""

    call_id: CallId
    state: BridgeState
    devices: list[int] = field(default_factory=list)  # user devices still ringing
    forks: list[int] = field(default_factory=list)  # callee forks still ringing
    callee: Peer | None = None
    caller_up: bool = False  # the caller's dialog is established (not a pending INVITE)
    statuses: list[int] = field(default_factory=list)  # of failed devices or forks
    caller_holds: bool = False
    callee_holds: bool = False
    dialogs_saved: bool = False
    awaiting: tuple[Peer, ...] = ()  # peers we re-INVITEd ourselves: their answers are ours
    deferred: tuple[Reoffer, ...] = ()  # for peers in ``awaiting``: sent on their answer
    peers_made: int = 0  # forks numbered so far (a transfer dials again)

    @classmethod
    def offered(cls, call_id: CallId) -> BridgeMachine:
        return cls(call_id, BridgeState.OFFERED)

    @classmethod
    def click_to_dial(cls, call_id: CallId, ring: RingDevices) -> tuple[BridgeMachine,
                                                                        list[Action]]:
        """Start with the user's devices ringing (the bridge exists for the command)."""
        machine = cls(call_id, BridgeState.RINGING_USER)
        actions: list[Action] = []
        for number, target in enumerate(ring.devices):
            machine.devices.append(number)
            actions.append(CallDevice(Peer(Role.DEVICE, number), target, ring.display_name,
                                      ring.shown_number, ring.auto_answer))
        actions.append(StartTimer(Timer.USER, ring.timeout))
        return machine, actions

    # --- the one entry point -------------------------------------------------------------

    def kind_of(self, event: BridgeInput) -> InputKind:
        """Name the input as the table sees it, from what the machine knows now."""
        match event:
            case DialTargets():
                return K.DIAL
            case Refuse():
                return K.REFUSE
            case EndCall():
                return K.END
            case TimedOut(timer=Timer.RING):
                return K.RING_TIMEOUT
            case TimedOut():
                return K.USER_TIMEOUT
            case HoldSide():
                return K.HOLD
            case ResumeSide():
                return K.RESUME
            case TransferTo(dial=dial):
                return K.TRANSFER if dial.targets else K.TRANSFER_NOWHERE
            case HandOver():
                return K.HAND_OVER
            case TakeOver():
                return K.TAKE_OVER
            case Ringing(peer=peer):
                return self._peer_kind(peer, K.DEVICE_RINGING, K.FORK_RINGING, None, None)
            case Answered(peer=peer) if peer in self.awaiting:
                return K.OWN_ANSWERED
            case Answered(peer=peer):
                fork = K.FORK_ANSWERED_CALLER_UP if self.caller_up else K.FORK_ANSWERED
                return self._peer_kind(peer, K.DEVICE_ANSWERED, fork, K.CALLER_ANSWERED,
                                       K.CALLEE_ANSWERED)
            case Failed(peer=peer):
                last_device = self.devices == [peer.number]
                last_fork = self.forks == [peer.number]
                return self._peer_kind(
                    peer, K.LAST_DEVICE_FAILED if last_device else K.DEVICE_FAILED,
                    K.LAST_FORK_FAILED if last_fork else K.FORK_FAILED,
                    K.CALLER_ENDED, K.CALLEE_ENDED)
            case HungUp(peer=peer):
                if peer.role is Role.CALLER or peer == self.callee:
                    return self._peer_kind(peer, None, None, K.CALLER_ENDED, K.CALLEE_ENDED)
                # A device or fork hanging up before it answered is one that failed.
                return self.kind_of(Failed(at_us=event.at_us, peer=peer, status=500))
            case Referred(peer=peer) if self.state in (S.CONNECTING, S.CONNECTED, S.HELD):
                return self._peer_kind(peer, None, None, K.REFERRED, K.REFERRED)
            case Referred(at_us=at_us, peer=peer):  # not answered, or a transfer going on
                return self.kind_of(HungUp(at_us=at_us, peer=peer))
            case Reoffered(peer=peer):
                return self._peer_kind(peer, None, None, K.CALLER_REOFFERED,
                                       K.CALLEE_REOFFERED)
            case _:
                assert_never(event)

    def _peer_kind(self, peer: Peer, device: InputKind | None, fork: InputKind | None,
                   caller: InputKind | None, callee: InputKind | None) -> InputKind:
        if peer.role is Role.CALLER:
            kind = caller
        elif peer == self.callee:
            kind = callee
        elif peer.role is Role.DEVICE and peer.number in self.devices:
            kind = device
        elif peer.role is Role.FORK and peer.number in self.forks:
            kind = fork
        else:
            kind = None
        return kind if kind is not None else K.STRAY

    def handle(self, event: BridgeInput) -> list[Action]:
        """Apply ``event``; return what to do. Raises ``IllegalTransition`` (and changes
        nothing) for a pair the table does not have."""
        kind = self.kind_of(event)
        allowed = TRANSITIONS[self.state]
        if kind not in allowed:
            raise IllegalTransition(self.state, kind)
        before = self.state
        new_state = allowed[kind]
        if before is S.ENDED or kind is K.STRAY or (
                before is S.REFERRED and new_state is S.REFERRED):
            return []  # (REFERRED: the phone that would be re-offered or relayed to is gone)
        actions = self._act(kind, event)
        self.state = new_state
        if new_state is S.ENDED:
            actions.append(Finished(self.dialogs_saved))
        return actions

    # --- what each transition does ---------------------------------------------------------

    def _act(self, kind: InputKind, event: BridgeInput) -> list[Action]:
        match kind:
            case K.DIAL:
                assert isinstance(event, DialTargets)
                return self._dial(event)
            case K.REFUSE:
                assert isinstance(event, Refuse)
                actions = self._end_everything(event.status, event.phrase)
                return actions + self._ended(event.reason, event.at_us)
            case K.END:
                assert isinstance(event, EndCall)
                return self._end_everything(487, "Request Terminated") + self._ended(
                    event.reason, event.at_us)
            case K.DEVICE_FAILED | K.FORK_FAILED:
                self._note_failure(event)
                return []
            case K.DEVICE_RINGING:
                return []  # the user's leg is RINGING from the start
            case K.DEVICE_ANSWERED:
                assert isinstance(event, Answered)
                return self._user_picked_up(event)
            case K.LAST_DEVICE_FAILED:
                self._note_failure(event)
                self.devices.clear()
                return [StopTimer(Timer.USER), *self._ended(
                    reason_for_status(self._best_failure()), event.at_us)]
            case K.USER_TIMEOUT:
                return [*self._disconnect_all(self.devices, Role.DEVICE),
                        *self._ended(HangupReason.NO_ANSWER, event.at_us)]
            case K.FORK_RINGING:
                return self._fork_ringing(event)
            case K.FORK_ANSWERED | K.FORK_ANSWERED_CALLER_UP:
                assert isinstance(event, Answered)
                return self._fork_answered(event, relay=kind is K.FORK_ANSWERED)
            case K.LAST_FORK_FAILED:
                self._note_failure(event)
                self.forks.clear()
                status = self._best_failure()
                return [StopTimer(Timer.RING), *self._end_caller(status, phrase_for_status(
                    status)), *self._ended(reason_for_status(status), event.at_us)]
            case K.RING_TIMEOUT:
                if self.state in (S.CONNECTED, S.HELD):
                    return []  # fired as the answer came in
                return [*self._disconnect_all(self.forks, Role.FORK),
                        *self._end_caller(480, "No Answer"),
                        *self._ended(HangupReason.NO_ANSWER, event.at_us)]
            case K.CALLER_REOFFERED | K.CALLEE_REOFFERED:
                assert isinstance(event, Reoffered)
                return self._reoffered(event)
            case K.CALLER_ANSWERED:
                if self.state is S.CONNECTING or self.callee is None:
                    return []  # the answer to our own re-INVITE (click-to-dial)
                return [Relay(self.callee)]
            case K.CALLEE_ANSWERED:
                return [Relay(CALLER)]
            case K.CALLER_ENDED:
                if self.callee is not None:
                    return [Disconnect(self.callee),
                            *self._ended(HangupReason.COMPLETED, event.at_us)]
                return [*self._disconnect_all(self.forks, Role.FORK),
                        *self._ended(HangupReason.CANCELLED, event.at_us)]
            case K.CALLEE_ENDED:
                return [Disconnect(CALLER), *self._ended(HangupReason.COMPLETED, event.at_us)]
            case K.HOLD:
                assert isinstance(event, HoldSide)
                return self._hold(event)
            case K.RESUME:
                assert isinstance(event, ResumeSide)
                return self._resume(event)
            case K.TRANSFER:
                assert isinstance(event, TransferTo)
                return self._transfer(event)
            case K.TRANSFER_NOWHERE:
                assert isinstance(event, TransferTo)
                return [Disconnect(self._peer_on(event.keep.other)),
                        Disconnect(self._peer_on(event.keep)),
                        *self._ended(HangupReason.UNAVAILABLE, event.at_us)]
            case K.HAND_OVER:
                assert isinstance(event, HandOver)
                user, other = self._peer_on(event.user_side), self._peer_on(
                    event.user_side.other)
                self.callee = None
                return [Disconnect(user), Release(other)]
            case K.TAKE_OVER:
                assert isinstance(event, TakeOver)
                return self._take_over(event)
            case K.REFERRED:
                assert isinstance(event, Referred)
                return self._referred(event)
            case K.OWN_ANSWERED:
                assert isinstance(event, Answered)
                self.awaiting = tuple(p for p in self.awaiting if p != event.peer)
                waiting = [r for r in self.deferred if r.to == event.peer]
                if not waiting:
                    return []
                self.deferred = tuple(r for r in self.deferred if r.to != event.peer)
                return [*self._reoffer(*(replace(r, after_ack=True) for r in waiting)),
                        SaveDialogs()]
            case K.STRAY:
                return []
            case _:
                assert_never(kind)

    def _dial(self, event: DialTargets) -> list[Action]:
        actions: list[Action] = []
        for number, target in enumerate(event.targets, start=self.peers_made):
            self.forks.append(number)
            self.peers_made = number + 1
            actions.append(CallFork(Peer(Role.FORK, number), target, event.caller_number,
                                    event.caller_name, event.callee_number))
        actions.append(StartTimer(Timer.RING, event.ring_timeout))
        return actions

    def _user_picked_up(self, event: Answered) -> list[Action]:
        _discard(self.devices, event.peer.number)
        actions: list[Action] = [*self._disconnect_all(self.devices, Role.DEVICE),
                                 StopTimer(Timer.USER), BecomeCaller(event.peer)]
        if event.late_offer:
            actions.append(AcceptLateOffer(CALLER))
        self.caller_up = True
        self.dialogs_saved = True
        return [*actions, Report(UserPickedUp(call_id=self.call_id, at_us=event.at_us)),
                SaveDialogs()]

    def _fork_ringing(self, event: BridgeInput) -> list[Action]:
        if self.state is S.ALERTING:
            return []  # relayed once
        actions: list[Action] = [] if self.caller_up else [Relay(CALLER)]
        return [*actions, Report(CalleeRinging(call_id=self.call_id, at_us=event.at_us))]

    def _fork_answered(self, event: Answered, relay: bool) -> list[Action]:
        _discard(self.forks, event.peer.number)
        self.callee = event.peer
        actions: list[Action] = [*self._disconnect_all(self.forks, Role.FORK),
                                 StopTimer(Timer.RING)]
        actions.append(Relay(CALLER) if relay else ReofferCaller())
        self.caller_up = True
        self.dialogs_saved = True
        return [*actions, Report(CallAnswered(call_id=self.call_id, at_us=event.at_us)),
                SaveDialogs()]

    def _reoffered(self, event: Reoffered) -> list[Action]:
        if self.callee is None:
            return []  # nobody to relay it to yet (a picked-up user's phone)
        from_caller = event.peer.role is Role.CALLER
        actions: list[Action] = [Relay(self.callee if from_caller else CALLER)]
        before = self._held()
        if from_caller:
            self.caller_holds = event.holds
        else:
            self.callee_holds = event.holds
        after = self._held()
        if before != after:
            actions.append(Report(HoldChanged(call_id=self.call_id, held=after,
                                              at_us=event.at_us)))
        return [*actions, SaveDialogs()]  # the re-INVITE used up a CSeq of a dialog

    def _hold(self, event: HoldSide) -> list[Action]:
        if self.state is S.HELD:
            return []  # held already
        if self.state is S.CONNECTING:
            # The caller has not answered our re-INVITE with the callee's SDP: its answer
            # is ours, and the hold's re-offer to it goes out after that answer.
            self.awaiting = (*self.awaiting, CALLER)
        user, other = self._peer_on(event.side), self._peer_on(event.side.other)
        return self._reoffer_both(
            Reoffer(other, user, Direction.SENDONLY), Reoffer(user, other, Direction.INACTIVE),
            was_held=self._held(), held=True, at_us=event.at_us)

    def _resume(self, event: ResumeSide) -> list[Action]:
        if self.state is S.CONNECTING or not self._held():
            return []  # nobody holds, or the caller's re-INVITE is pending
        user, other = self._peer_on(event.side), self._peer_on(event.side.other)
        self.caller_holds = self.callee_holds = False
        return self._reoffer_both(
            Reoffer(other, user, Direction.SENDRECV), Reoffer(user, other, Direction.SENDRECV),
            was_held=True, held=False, at_us=event.at_us)

    def _reoffer_both(self, first: Reoffer, second: Reoffer, *, was_held: bool, held: bool,
                      at_us: int) -> list[Action]:
        actions = self._reoffer(first, second)
        if was_held != held:
            actions.append(Report(HoldChanged(call_id=self.call_id, held=held, at_us=at_us)))
        return [*actions, SaveDialogs()]

    def _transfer(self, event: TransferTo) -> list[Action]:
        user, kept = self._peer_on(event.keep.other), self._peer_on(event.keep)
        self.callee = None
        self.caller_up = True
        self._media_reset()
        return [Disconnect(user), BecomeCaller(kept, resume=True), *self._dial(event.dial),
                SaveDialogs()]

    def _referred(self, event: Referred) -> list[Action]:
        """The phone that sent REFER is out (sippy hung it up); the domain decides where
        the other side goes: a ``Transfer``, as for the API's, or a ``Hangup``."""
        side = Side.CALLER if event.peer.role is Role.CALLER else Side.CALLEE
        self._media_reset()
        return [Disconnect(event.peer),
                Report(TransferAsked(call_id=self.call_id, side=side,
                                     destination=event.destination, at_us=event.at_us))]

    def _take_over(self, event: TakeOver) -> list[Action]:
        user, kept = self._peer_on(event.user_side), self._peer_on(event.user_side.other)
        if event.user_side is Side.CALLER:
            joined = CALLER
        else:
            joined = Peer(Role.FORK, self.peers_made)
            self.peers_made += 1
            self.callee = joined
        self._media_reset()
        return [Disconnect(user), Adopt(joined),
                *self._reoffer(Reoffer(kept, joined, Direction.SENDRECV),
                               Reoffer(joined, kept, Direction.SENDRECV)), SaveDialogs()]

    def _reoffer(self, *reoffers: Reoffer) -> list[Action]:
        """Send each re-offer now, or, to a peer that has not answered our last one yet (a
        dialog has one INVITE transaction at a time, RFC 3261 14.1), when it has: the
        latest re-offer per peer wins."""
        actions: list[Action] = []
        for reoffer in reoffers:
            if reoffer.to in self.awaiting:
                self.deferred = (*(r for r in self.deferred if r.to != reoffer.to), reoffer)
            else:
                self.awaiting = (*self.awaiting, reoffer.to)
                actions.append(reoffer)
        return actions

    # --- helpers ----------------------------------------------------------------------------

    def _peer_on(self, side: Side) -> Peer:
        """The dialog on ``side`` of an answered call."""
        if side is Side.CALLER:
            return CALLER
        assert self.callee is not None, "an answered call has a callee"
        return self.callee

    def _held(self) -> bool:
        return self.state is S.HELD or self.caller_holds or self.callee_holds

    def _media_reset(self) -> None:
        """A new pair of parties: nobody holds, and no answer of ours is pending."""
        self.caller_holds = self.callee_holds = False
        self.awaiting = self.deferred = ()

    def _note_failure(self, event: BridgeInput) -> None:
        """A device or fork is out: remember its status for the final answer."""
        if isinstance(event, Failed | HungUp):
            self.statuses.append(event.status if isinstance(event, Failed) else 500)
            pending = self.devices if event.peer.role is Role.DEVICE else self.forks
            _discard(pending, event.peer.number)

    def _disconnect_all(self, numbers: list[int], role: Role) -> list[Action]:
        actions: list[Action] = [Disconnect(Peer(role, number)) for number in sorted(numbers)]
        numbers.clear()
        return actions

    def _end_caller(self, status: int, phrase: str) -> list[Action]:
        """Refuse the caller while its INVITE is pending; BYE it once it is up."""
        if self.state in (S.RINGING_USER,):
            return []  # no caller yet
        return [Disconnect(CALLER)] if self.caller_up else [RefuseCaller(status, phrase)]

    def _end_everything(self, status: int, phrase: str) -> list[Action]:
        actions: list[Action] = []
        if self.callee is not None:
            actions.append(Disconnect(self.callee))
        actions += self._disconnect_all(self.forks, Role.FORK)
        actions += self._disconnect_all(self.devices, Role.DEVICE)
        actions += self._end_caller(status, phrase)
        return [*actions, StopTimer(Timer.RING), StopTimer(Timer.USER)]

    def _ended(self, reason: HangupReason | None, at_us: int) -> list[Action]:
        if reason is None:
            return []
        return [Report(CallEnded(call_id=self.call_id, reason=reason, at_us=at_us))]

    def _best_failure(self) -> int:
        for status in _PREFERENCE:
            if status in self.statuses:
                return status
        return min(self.statuses, default=480)


def _discard(numbers: list[int], number: int) -> None:
    if number in numbers:
        numbers.remove(number)
