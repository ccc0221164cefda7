"""What crosses between the SIP side and the call domain.

Signals are past-tense facts from ``sip/`` (they carry the time they were observed);
commands are what the domain asks ``sip/`` to do. Both are plain frozen values, so they
can be handed between threads without sharing anything mutable.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookswitch.calls.ids import CallId, TenantId, UserId
from hookswitch.calls.leg import HangupReason, Side

# --- signals: sip/ -> calls/ -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOffered:
    """An authenticated INVITE arrived: from a user's phone, or from a trunk."""

    call_id: CallId
    tenant_id: TenantId
    dialled: str
    at_us: int
    from_user: UserId | None = None  # None when the call comes from a trunk
    from_number: str = ""
    from_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CalleeRinging:
    call_id: CallId
    at_us: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered:
    call_id: CallId
    at_us: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldChanged:
    """Either side put the call on hold (held=True) or the last hold was lifted."""

    call_id: CallId
    held: bool
    at_us: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    call_id: CallId
    reason: HangupReason
    at_us: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserPickedUp:
    """Click-to-dial: one of the user's own phones answered the first call."""

    call_id: CallId
    at_us: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferAsked:
    """The phone on ``side`` sent REFER (its own transfer button): it has left the call
    (SIP has answered 202 and hung it up) and asks that the other party be connected to
    ``destination``, the user part of its Refer-To."""

    call_id: CallId
    side: Side
    destination: str
    at_us: int


Signal = (CallOffered | CalleeRinging | CallAnswered | HoldChanged | CallEnded | UserPickedUp
          | TransferAsked)

# --- commands: calls/ -> sip/ ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UserDevices:
    """Every registered device of a user, rung at once; the first to answer wins."""

    user_id: UserId


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkNumber:
    host: str
    port: int
    number: str


Target = UserDevices | TrunkNumber


@dataclass(frozen=True, slots=True, kw_only=True)
class Connect:
    """Call ``target`` for the offered call and bridge it to the caller when answered."""

    call_id: CallId
    target: Target
    caller_number: str
    caller_name: str
    callee_number: str
    ring_timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """Refuse the offered call with a SIP status (404 no such extension, 480, ...)."""

    call_id: CallId
    status: int
    phrase: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Hangup:
    """End every SIP dialog of the call: CANCEL what still rings, BYE what is answered;
    its legs end with ``reason``."""

    call_id: CallId
    reason: HangupReason = HangupReason.API


@dataclass(frozen=True, slots=True, kw_only=True)
class RingUser:
    """Click-to-dial, step one: ring every device of the user, showing ``display_name``
    and ``shown_number``; report ``UserPickedUp`` when one answers (late offer: the
    INVITE carries no SDP, the phone's answer brings its offer)."""

    call_id: CallId
    user_id: UserId
    display_name: str
    shown_number: str
    auto_answer: bool
    timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    """Put the call on hold for the user on ``side``: the other side is re-INVITEd
    ``sendonly``, the user's phone ``inactive``; ``HoldChanged`` follows."""

    call_id: CallId
    side: Side


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """Take the call off hold (both sides re-INVITEd ``sendrecv``)."""

    call_id: CallId
    side: Side


@dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """Blind transfer: hang up the side that is not ``keep`` and connect the party on
    ``keep`` to ``target`` (rung like ``Connect``'s), which becomes the caller's side."""

    call_id: CallId
    keep: Side
    target: Target
    caller_number: str
    caller_name: str
    callee_number: str
    ring_timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Merge:
    """Attended transfer: hang up the user on ``user_side`` of ``call_id`` and on
    ``other_user_side`` of ``other_call_id``, and connect the two parties left. The call
    goes on as ``call_id``; ``other_call_id`` names it too from then on."""

    call_id: CallId
    user_side: Side
    other_call_id: CallId
    other_user_side: Side


Command = Connect | Reject | Hangup | RingUser | Hold | Resume | Transfer | Merge
