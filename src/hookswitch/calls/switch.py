"""The call domain: turns SIP signals into leg changes and SIP commands.

Pure code: it is given the directory, the registrations it may ask about, and the time in
every signal; it reads no clock, socket or database. The shell around it (``calls.runtime``)
sends the commands to ``sip/`` and records the leg changes in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hookswitch.calls.call import Call, CallKind
from hookswitch.calls.commands import (
    CallAnswered,
    CalleeRinging,
    CallEnded,
    CallOffered,
    Command,
    Connect,
    HoldChanged,
    Reject,
    Signal,
    TrunkNumber,
    UserDevices,
)
from hookswitch.calls.ids import CallId, LegId, UserId
from hookswitch.calls.leg import Direction, HangupReason, Leg, LegChange, LegSignal, Party
from hookswitch.calls.routing import ToTrunk, ToUser, Unroutable, route
from hookswitch.directory.snapshot import Directory, User


@dataclass(frozen=True, slots=True)
class LegOpened:
    """A new user leg, born RINGING; recorded before any of its changes."""

    leg: Leg
    kind: CallKind


Effect = Command | LegOpened | LegChange


@dataclass(frozen=True, slots=True)
class SwitchSettings:
    ring_timeout: float = 60.0


class Switch:
    """Every live call, keyed by call id. One instance, driven from one task."""

    def __init__(
        self,
        directory: Directory,
        has_devices: Callable[[UserId], bool],
        new_leg_id: Callable[[], LegId],
        settings: SwitchSettings | None = None,
    ) -> None:
        self.directory = directory
        self.has_devices = has_devices
        self.new_leg_id = new_leg_id
        self.settings = settings or SwitchSettings()
        self.calls: dict[CallId, Call] = {}

    def handle(self, signal: Signal) -> list[Effect]:
        match signal:
            case CallOffered():
                return self._offered(signal)
            case CalleeRinging():
                return []  # legs are already RINGING from the moment they exist
            case CallAnswered():
                return self._signal_call(signal.call_id, LegSignal.ANSWERED, signal.at_us)
            case HoldChanged():
                held = LegSignal.HELD if signal.held else LegSignal.RESUMED
                return self._signal_call(signal.call_id, held, signal.at_us)
            case CallEnded():
                effects = self._signal_call(
                    signal.call_id, LegSignal.ENDED, signal.at_us, signal.reason
                )
                self.calls.pop(signal.call_id, None)
                return effects

    def _signal_call(
        self,
        call_id: CallId,
        signal: LegSignal,
        at_us: int,
        reason: HangupReason | None = None,
    ) -> list[Effect]:
        call = self.calls.get(call_id)
        if call is None:
            return []
        return list(call.signal_all(signal, at_us, reason))

    def _open_leg(
        self,
        call: Call,
        user: User,
        direction: Direction,
        caller: Party,
        callee: Party,
        at_us: int,
    ) -> LegOpened:
        leg = Leg(
            id=self.new_leg_id(),
            call_id=call.id,
            tenant_id=call.tenant_id,
            user_id=user.id,
            extension=user.extension,
            direction=direction,
            caller=caller,
            callee=callee,
            created_us=at_us,
        )
        call.legs.append(leg)
        return LegOpened(leg, call.kind)

    def _offered(self, offer: CallOffered) -> list[Effect]:
        tenant = self.directory.tenants.get(offer.tenant_id)
        if tenant is None:
            return [Reject(call_id=offer.call_id, status=404, phrase="Not Found")]
        caller_user = self.directory.user(offer.from_user) if offer.from_user else None
        destination = route(tenant, offer.dialled)
        if caller_user is None and not isinstance(destination, ToUser):
            # A trunk may only reach users, never loop back out through a trunk.
            destination = Unroutable(404, "Not Found")
        if isinstance(destination, Unroutable):
            return [Reject(call_id=offer.call_id, status=destination.status,
                           phrase=destination.phrase)]

        if caller_user is not None:
            caller = Party(number=caller_user.extension, name=caller_user.name)
        else:
            caller = Party(number=offer.from_number, name=offer.from_name or offer.from_number)
        match destination:
            case ToUser(user=callee_user):
                callee = Party(number=callee_user.extension, name=callee_user.name)
                kind = CallKind.INTERNAL if caller_user else CallKind.INBOUND
            case ToTrunk(number=number):
                callee = Party(number=number, name=number)
                kind = CallKind.OUTBOUND

        call = Call(id=offer.call_id, tenant_id=tenant.id, kind=kind, created_us=offer.at_us)
        self.calls[call.id] = call
        effects: list[Effect] = []
        if caller_user is not None:
            effects.append(
                self._open_leg(call, caller_user, Direction.OUT, caller, callee, offer.at_us)
            )

        match destination:
            case ToUser(user=callee_user):
                if not self.has_devices(callee_user.id):
                    effects += call.signal_all(
                        LegSignal.ENDED, offer.at_us, HangupReason.UNAVAILABLE
                    )
                    effects.append(
                        Reject(call_id=call.id, status=480, phrase="Temporarily Unavailable")
                    )
                    self.calls.pop(call.id)
                    return effects
                effects.append(
                    self._open_leg(call, callee_user, Direction.IN, caller, callee, offer.at_us)
                )
                target: UserDevices | TrunkNumber = UserDevices(user_id=callee_user.id)
                caller_number = caller.number
            case ToTrunk(trunk=trunk, number=number):
                target = TrunkNumber(host=trunk.host, port=trunk.port, number=number)
                assert caller_user is not None
                caller_number = caller_user.presented_number
        effects.append(
            Connect(
                call_id=call.id,
                target=target,
                caller_number=caller_number,
                caller_name=caller.name,
                callee_number=callee.number,
                ring_timeout=self.settings.ring_timeout,
            )
        )
        return effects

    def hangup_all(self) -> list[Effect]:
        """Shut-down: ask SIP to end every live call (their legs end as SIP reports)."""
        from hookswitch.calls.commands import Hangup

        return [Hangup(call_id=call_id) for call_id in self.calls]
