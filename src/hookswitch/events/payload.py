"""The call event as the vendor documents it: one flat JSON object per state change of a
user's leg, every value a string (CALL-EVENTS.md, Example 1)."""

from __future__ import annotations

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
    }
    if reason is not None:
        event["reason"] = reason
    return event
