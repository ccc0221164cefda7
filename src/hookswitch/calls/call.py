"""A call: its id, its kind, and the user legs that belong to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hookswitch.calls.ids import CallId, TenantId
from hookswitch.calls.leg import HangupReason, Leg, LegChange, LegSignal


class CallKind(StrEnum):
    INTERNAL = "internal"
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    CLICK_TO_DIAL = "click-to-dial"


@dataclass(slots=True, kw_only=True)
class Call:
    id: CallId
    tenant_id: TenantId
    kind: CallKind
    created_us: int
    legs: list[Leg] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return all(leg.ended for leg in self.legs)

    def signal_all(
        self, signal: LegSignal, at_us: int, reason: HangupReason | None = None
    ) -> list[LegChange]:
        """Apply a call-wide signal to every leg still open; return what changed."""
        changes = []
        for leg in self.legs:
            if leg.ended:
                continue
            change = leg.apply(signal, at_us, reason)
            if change is not None:
                changes.append(change)
        return changes
