"""The call event as the vendor documents it: one flat JSON object per state change of a
user's leg, every value a string (CALL-EVENTS.md, Example 1)."""

from __future__ import annotations

from typing import Any, Protocol


class LegRecord(Protocol):
    id: str
    call_id: str
    tenant_id: str
    extension: str
    direction: str
    caller_number: str
    caller_name: str
    callee_number: str
    callee_name: str


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
