"""The state of one user's call leg, as a pure state machine.

Rules (in the spirit of h11's ``_state.py``):

- A leg is born RINGING: it exists because one of the user's devices alerts (an incoming
  call, or the first step of a click-to-dial) or because the user's own phone dialled.
- RINGING -> ACTIVE when the two parties are connected.
- ACTIVE <-> HELD while either side holds; resuming returns to ACTIVE.
- A blind transfer of the other party's call to someone new makes the leg ring again
  (ACTIVE/HELD -> RINGING, ``REDIALED``) with that new other party; an attended transfer
  connects it to a new other party at once (ACTIVE/HELD -> ACTIVE, ``RECONNECTED``: a
  change, not a self-loop, since who you talk to is news). Both carry the new party.
- Any state but HANGUP -> HANGUP exactly once, with a reason. A leg that never got
  answered reaches HANGUP too (missed, cancelled, refused).
- Repeating the current state (a second "held" while held) is an explicit self-loop and
  produces no transition; anything not in the table raises ``IllegalTransition`` and leaves
  the leg unchanged.

The module reads no clock: the time of every signal is given by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hookswitch.calls.ids import CallId, LegId, TenantId, UserId


class LegState(StrEnum):
    RINGING = "RINGING"
    ACTIVE = "ACTIVE"
    HELD = "HELD"
    HANGUP = "HANGUP"


class HangupReason(StrEnum):
    COMPLETED = "completed"  # answered, then someone hung up
    CANCELLED = "cancelled"  # the caller gave up while it rang
    NO_ANSWER = "no-answer"  # nobody picked up before the ring timeout
    BUSY = "busy"  # 486/600
    REJECTED = "rejected"  # 603 or another refusal
    UNAVAILABLE = "unavailable"  # not registered, 480, unreachable
    API = "api"  # ended by the hangup command
    TRANSFERRED = "transferred"  # the user handed the call on (blind or attended)
    FAILED = "failed"  # an error, or a crash left the leg open


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Side(StrEnum):
    """Which end of its call's SIP bridge a leg's user is on: the dialog that started the
    call (or, in a click-to-dial, the user's phone that picked up) or the one that was
    called. An OUT leg starts as the caller, an IN leg as the callee; a transfer can move
    the party that stays to the caller's end."""

    CALLER = "caller"
    CALLEE = "callee"

    @property
    def other(self) -> Side:
        return Side.CALLEE if self is Side.CALLER else Side.CALLER


class LegSignal(StrEnum):
    """Past-tense facts about a leg, as the SIP side reports them."""

    ANSWERED = "answered"
    HELD = "held"
    RESUMED = "resumed"
    ENDED = "ended"
    REDIALED = "redialed"  # the other party is being replaced: it rings anew
    RECONNECTED = "reconnected"  # connected to a new other party


class IllegalTransition(Exception):
    """A signal that the state table does not allow in the leg's current state."""

    code = "illegal-leg-transition"

    def __init__(self, state: LegState, signal: LegSignal) -> None:
        super().__init__(f"leg in state {state} cannot take signal {signal}")
        self.state = state
        self.signal = signal


_SELF = None  # marker in the table: allowed, but nothing changes

TRANSITIONS: dict[LegState, dict[LegSignal, LegState | None]] = {
    LegState.RINGING: {
        LegSignal.ANSWERED: LegState.ACTIVE,
        LegSignal.ENDED: LegState.HANGUP,
    },
    LegState.ACTIVE: {
        LegSignal.ANSWERED: _SELF,
        LegSignal.HELD: LegState.HELD,
        LegSignal.RESUMED: _SELF,
        LegSignal.ENDED: LegState.HANGUP,
        LegSignal.REDIALED: LegState.RINGING,
        LegSignal.RECONNECTED: LegState.ACTIVE,
    },
    LegState.HELD: {
        LegSignal.HELD: _SELF,
        LegSignal.RESUMED: LegState.ACTIVE,
        LegSignal.ENDED: LegState.HANGUP,
        LegSignal.REDIALED: LegState.RINGING,
        LegSignal.RECONNECTED: LegState.ACTIVE,
    },
    LegState.HANGUP: {
        LegSignal.ENDED: _SELF,
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """One end of a call as shown to users: a number and a display name."""

    number: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LegChange:
    """A transition that happened: what ``events/`` and the store record."""

    leg_id: LegId
    call_id: CallId
    state: LegState
    sequence: int
    at_us: int
    reason: HangupReason | None = None
    # When the leg was first answered (a resume from hold is not an answer); None before.
    answered_us: int | None = None
    # The leg's new other party (after a transfer); None when it did not change.
    other: Party | None = None


@dataclass(slots=True, kw_only=True)
class Leg:
    """A user's side of a call. Created RINGING; see the module rules."""

    id: LegId
    call_id: CallId
    tenant_id: TenantId
    user_id: UserId
    extension: str
    direction: Direction
    caller: Party
    callee: Party
    created_us: int
    state: LegState = LegState.RINGING
    reason: HangupReason | None = None
    answered_us: int | None = None
    ended_us: int | None = None
    history: list[LegChange] = field(default_factory=list)
    side: Side = Side.CALLER  # set from the direction when the leg is made

    def __post_init__(self) -> None:
        self.side = Side.CALLER if self.direction is Direction.OUT else Side.CALLEE
        self.history.append(
            LegChange(
                leg_id=self.id,
                call_id=self.call_id,
                state=LegState.RINGING,
                sequence=1,
                at_us=self.created_us,
            )
        )

    @property
    def ended(self) -> bool:
        return self.state is LegState.HANGUP

    @property
    def answered(self) -> bool:
        """Connected now (ACTIVE or HELD): what hold and transfer need."""
        return self.state in (LegState.ACTIVE, LegState.HELD)

    @property
    def other(self) -> Party:
        """Whom this leg's user talks to: the callee of an OUT leg, the caller of an IN."""
        return self.callee if self.direction is Direction.OUT else self.caller

    def apply(
        self,
        signal: LegSignal,
        at_us: int,
        reason: HangupReason | None = None,
        other: Party | None = None,
    ) -> LegChange | None:
        """Apply ``signal``; return the change, or None for an allowed self-loop."""
        allowed = TRANSITIONS[self.state]
        if signal not in allowed:
            raise IllegalTransition(self.state, signal)
        if signal is LegSignal.ENDED and reason is None and self.state is not LegState.HANGUP:
            raise ValueError("a leg cannot end without a reason")
        if signal in (LegSignal.REDIALED, LegSignal.RECONNECTED) and other is None:
            raise ValueError("a transferred leg needs its new other party")
        new_state = allowed[signal]
        if new_state is None:
            return None
        self.state = new_state
        if other is not None:
            if self.direction is Direction.OUT:
                self.callee = other
            else:
                self.caller = other
        if new_state is LegState.ACTIVE and self.answered_us is None:
            self.answered_us = at_us
        if new_state is LegState.HANGUP:
            self.reason = reason
            self.ended_us = at_us
        change = LegChange(
            leg_id=self.id,
            call_id=self.call_id,
            state=new_state,
            sequence=len(self.history) + 1,
            at_us=at_us,
            reason=self.reason if new_state is LegState.HANGUP else None,
            answered_us=self.answered_us,
            other=other,
        )
        self.history.append(change)
        return change


@dataclass(frozen=True, slots=True, kw_only=True)
class LegView:
    """A leg as stored (for legs whose call has ended and left memory), with the users
    of every leg of its call."""

    id: LegId
    call_id: CallId
    tenant_id: str
    user_id: UserId
    state: LegState
    reason: str | None
    parties: frozenset[UserId]
