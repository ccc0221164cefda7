"""The call event as the vendor documents it: one flat JSON object per state change of a
user's leg, every value a string (CALL-EVENTS.md, Example 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class LegRecord(Protocol):
    """What an event repeats of its leg (a stored row or the recorder's copy)."""

    @property
    def id(self) -> str: ...
    @property
    def call_id(self) -> str: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def extension(self) -> str: ...
    @property
    def direction(self) -> str: ...
    @property
    def caller_number(self) -> str: ...
    @property
    def caller_name(self) -> str: ...
    @property
    def callee_number(self) -> str: ...
    @property
    def callee_name(self) -> str: ...


def call_event(leg: LegRecord, state: str, sequence: int, at_us: int,
               reason: str | None) -> dict[str, Any]:
    event = {
        "tenant_id": str(leg.tenant_id),
        "user_extension": leg.extension,
        "direction": leg.direction,
        "state": state,
        "caller_number": leg.caller_number,
        "caller_name": leg.caller_name or leg.caller_number,
        "callee_number": leg.callee_number,
        "callee_name": leg.callee_name or leg.callee_number,
        "id": str(leg.id),
        "timestamp": str(at_us),
        # Added fields (not in the vendor's documents): kept as strings like the rest.
        "call_id": str(leg.call_id),
        "sequence": str(sequence),
        "type": "call",
    }
    if reason is not None:
        event["reason"] = reason
    return event


@dataclass(frozen=True, slots=True)
class HeldTime:
    """How long a leg has been HELD, folded over its changes in order (a summary's
    ``held_duration``)."""

    total_us: int = 0
    since_us: int | None = None  # HELD since then, now

    def after(self, state: str, at_us: int) -> HeldTime:
        if state == "HELD":
            return self if self.since_us is not None else HeldTime(self.total_us, at_us)
        if self.since_us is None:
            return self
        return HeldTime(self.total_us + max(0, at_us - self.since_us))


NOT_HELD = HeldTime()


def summary_event(leg: LegRecord, sequence: int, started_us: int, answered_us: int | None,
                  ended_us: int, reason: str, held: HeldTime = NOT_HELD) -> dict[str, Any]:
    """After a leg's HANGUP, what happened to it as a whole (the vendor's "summaries"; the
    shape is DESIGN.md's): times in epoch microseconds and the answered duration in whole
    seconds, all strings; ``answered_at`` is "" for a call never answered. Added: the time
    it spent on hold (``held_duration``, whole seconds, part of ``duration``)."""
    duration = (ended_us - answered_us) // 1_000_000 if answered_us is not None else 0
    return {
        "type": "summary",
        "tenant_id": str(leg.tenant_id),
        "user_extension": leg.extension,
        "id": str(leg.id),
        "call_id": str(leg.call_id),
        "sequence": str(sequence),
        "direction": leg.direction,
        "caller_number": leg.caller_number,
        "caller_name": leg.caller_name or leg.caller_number,
        "callee_number": leg.callee_number,
        "callee_name": leg.callee_name or leg.callee_number,
        "started_at": str(started_us),
        "answered_at": str(answered_us) if answered_us is not None else "",
        "ended_at": str(ended_us),
        "duration": str(max(0, duration)),
        "reason": reason,
        "timestamp": str(ended_us),
        "held_duration": str(held.after("HANGUP", ended_us).total_us // 1_000_000),
    }
