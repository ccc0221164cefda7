"""The call domain: turns SIP signals and API commands into leg changes and SIP commands.

Pure code: it is given the directory, the registrations it may ask about, and the time in
every signal; it reads no clock, socket or database. The shell around it (``server.py``)
sends the commands to ``sip/`` and hands the leg records to the one writer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import assert_never

from hookswitch.calls.call import Call, CallKind
from hookswitch.calls.commands import (
    CallAnswered,
    CalleeRinging,
    CallEnded,
    CallOffered,
    Command,
    Connect,
    Hangup,
    Hold,
    HoldChanged,
    Merge,
    Reject,
    Resume,
    RingUser,
    Signal,
    Target,
    Transfer,
    TransferAsked,
    TrunkNumber,
    UserDevices,
    UserPickedUp,
)
from hookswitch.calls.directory import Directory, Tenant, User
from hookswitch.calls.errors import InvalidDestination, NoRegisteredDevice
from hookswitch.calls.ids import CallId, LegId, UserId
from hookswitch.calls.leg import (
    Direction,
    HangupReason,
    Leg,
    LegChange,
    LegSignal,
    Party,
    Side,
)
from hookswitch.calls.routing import Route, ToTrunk, ToUser, Unroutable, route

PICK_UP_TO_CALL = "(pick up to call)"


@dataclass(frozen=True, slots=True)
class LegOpened:
    """A new user leg, born RINGING; recorded before any of its changes."""

    leg: Leg
    kind: CallKind


Effect = Command | LegOpened | LegChange


@dataclass(frozen=True, slots=True)
class SwitchSettings:
    ring_timeout: float = 60.0
    click_to_dial_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class _Pending:
    """A click-to-dial waiting for its user to pick up: whom to call then."""

    user: User
    destination: ToUser | ToTrunk


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
        self._pending: dict[CallId, _Pending] = {}
        self._live_legs: dict[LegId, Leg] = {}

    def live_leg(self, leg_id: LegId) -> Leg | None:
        """A leg of a call that has not ended yet."""
        return self._live_legs.get(leg_id)

    # --- signals from SIP ----------------------------------------------------------------

    def handle(self, signal: Signal) -> list[Effect]:
        match signal:
            case CallOffered():
                return self._offered(signal)
            case CalleeRinging():
                return []  # legs are already RINGING from the moment they exist
            case UserPickedUp():
                return self._picked_up(signal)
            case CallAnswered():
                return self._signal_call(signal.call_id, LegSignal.ANSWERED, signal.at_us)
            case HoldChanged():
                held = LegSignal.HELD if signal.held else LegSignal.RESUMED
                return self._signal_call(signal.call_id, held, signal.at_us)
            case TransferAsked():
                return self._transfer_asked(signal)
            case CallEnded():
                effects = self._signal_call(
                    signal.call_id, LegSignal.ENDED, signal.at_us, signal.reason
                )
                self._forget(signal.call_id)
                return effects
            case _:
                assert_never(signal)

    # --- commands from the API -----------------------------------------------------------

    def click_to_dial(
        self, call_id: CallId, user: User, destination: str, at_us: int
    ) -> tuple[Leg, list[Effect]]:
        """Ring the user's own phones first; the destination is called on pick-up.

        Raises ``NoRegisteredDevice`` or ``InvalidDestination`` before anything rings.
        """
        tenant = self.directory.tenants[user.tenant_id]
        target = _routable(tenant, destination)
        if isinstance(target, ToUser) and target.user.id == user.id:
            raise InvalidDestination(f"{destination} is the user's own extension; "
                                     "click-to-dial calls another extension or a number")
        if not self.has_devices(user.id):
            raise NoRegisteredDevice(f"extension {user.extension} has no registered phone to "
                                     "ring first; register a phone as it, then try again")
        call = Call(id=call_id, tenant_id=tenant.id, kind=CallKind.CLICK_TO_DIAL,
                    created_us=at_us)
        self.calls[call_id] = call
        self._pending[call_id] = _Pending(user, target)
        caller = Party(number=user.extension, name=user.name)
        opened = self._open_leg(call, user, Direction.OUT, caller, _callee_party(target), at_us)
        ring = RingUser(
            call_id=call_id,
            user_id=user.id,
            display_name=PICK_UP_TO_CALL,
            shown_number=_callee_party(target).number,
            auto_answer=user.auto_answer,
            timeout=self.settings.click_to_dial_timeout,
        )
        return opened.leg, [opened, ring]

    def hangup(self, call_id: CallId) -> list[Effect]:
        """End a live call; its legs end with reason ``api`` when SIP confirms."""
        call = self.calls.get(call_id)
        if call is None:
            return []
        return [Hangup(call_id=call.id)]

    def call_of(self, leg: Leg) -> Call:
        """The live call a live leg is in now (after an attended transfer, another call
        than the one it was born in)."""
        return self.calls[leg.call_id]

    def hold(self, leg: Leg) -> list[Effect]:
        """Hold the call for ``leg``'s user (an answered leg); the legs turn HELD when SIP
        reports the hold, as for a phone's."""
        return [Hold(call_id=self.call_of(leg).id, side=leg.side)]

    def resume(self, leg: Leg) -> list[Effect]:
        return [Resume(call_id=self.call_of(leg).id, side=leg.side)]

    def transfer(self, leg: Leg, destination: str, at_us: int) -> tuple[Leg | None,
                                                                        list[Effect]]:
        """Blind transfer: the party ``leg``'s user talks to is connected to
        ``destination``. The user's leg ends ``transferred`` now; the party's leg (if a
        user's) rings again with the new callee; the destination user (if one) gets a new
        leg, returned. Nobody answering ends the party's call with that reason (SIP's
        ``CallEnded``). Raises ``InvalidDestination`` before anything changes."""
        call = self.call_of(leg)
        tenant = self.directory.tenants[leg.tenant_id]
        target = _routable(tenant, destination)
        others = [other for other in call.legs if other is not leg and not other.ended]
        if isinstance(target, ToUser) and target.user.id == leg.user_id:
            raise InvalidDestination(f"{destination} is the user's own extension; transfer "
                                     "the call to another extension or a number")
        if isinstance(target, ToUser) and any(o.user_id == target.user.id for o in others):
            raise InvalidDestination(f"extension {destination} is the party being "
                                     "transferred; transfer it to someone else")
        kept = leg.other
        callee = _callee_party(target)
        effects: list[Effect] = self._end_transferred(leg, at_us)
        for other in others:
            effects += _changed(other.apply(LegSignal.REDIALED, at_us, other=callee))
            other.side = Side.CALLER  # the party kept is the caller of the new call
        kept_user = next((self.directory.user(o.user_id) for o in others), None)
        user = self.directory.user(leg.user_id)
        new_leg: Leg | None = None
        if isinstance(target, ToUser) and self.has_devices(target.user.id):
            opened = self._open_leg(call, target.user, Direction.IN, kept, callee, at_us)
            new_leg = opened.leg
            effects.append(opened)
        # Out through the trunk, the number shown is a number of ours: the kept user's,
        # or the transferring user's when the party kept came in from outside.
        shown = kept_user or user
        command, caller_number = _target(target, shown, kept)
        effects.append(Transfer(call_id=call.id, keep=leg.side.other, target=command,
                                caller_number=caller_number, caller_name=kept.name,
                                callee_number=callee.number,
                                ring_timeout=self.settings.ring_timeout))
        return new_leg, effects

    def merge(self, leg: Leg, target_leg: Leg, at_us: int) -> list[Effect]:
        """Attended transfer: the parties of two answered legs of one user are connected
        to each other; both user legs end ``transferred``, each party's leg (if a user's)
        is reconnected to the other party, and the two calls are one from now on."""
        staying, going = self.call_of(leg), self.call_of(target_leg)
        if staying is going:
            raise InvalidDestination("call_leg_id and target_call_leg_id are in the same "
                                     "call; an attended transfer joins two calls",
                                     field="payload.target_call_leg_id")
        party, target_party = leg.other, target_leg.other
        effects: list[Effect] = [*self._end_transferred(leg, at_us),
                                 *self._end_transferred(target_leg, at_us)]
        for other in (o for o in staying.legs if not o.ended and o.answered):
            effects += _changed(other.apply(LegSignal.RECONNECTED, at_us, other=target_party))
        for other in (o for o in going.legs if not o.ended and o.answered):
            effects += _changed(other.apply(LegSignal.RECONNECTED, at_us, other=party))
            other.side = leg.side  # in the user's place
        staying.legs.extend(going.legs)
        for moved in going.legs:
            self.calls[moved.call_id] = staying
        self.calls[going.id] = staying
        self._pending.pop(going.id, None)
        return [*effects, Merge(call_id=staying.id, user_side=leg.side,
                                other_call_id=going.id, other_user_side=target_leg.side)]

    # --- internals -------------------------------------------------------------------------

    def _transfer_asked(self, asked: TransferAsked) -> list[Effect]:
        """A phone's own transfer (REFER) is the blind transfer of its user's leg. The
        phone has left already: if it is not a user's (a trunk's), or the destination is
        not callable, the other party is hung up (``unavailable``: nobody to connect to)."""
        call = self.calls.get(asked.call_id)
        if call is None:
            return []
        leg = next((leg for leg in call.legs if not leg.ended and leg.answered
                    and leg.side is asked.side), None)
        if leg is not None:
            with contextlib.suppress(InvalidDestination):
                return self.transfer(leg, asked.destination, asked.at_us)[1]
        return [Hangup(call_id=call.id, reason=HangupReason.UNAVAILABLE)]

    def _forget(self, call_id: CallId) -> None:
        call = self.calls.pop(call_id, None)
        self._pending.pop(call_id, None)
        for leg in call.legs if call else ():
            self._live_legs.pop(leg.id, None)
            self.calls.pop(leg.call_id, None)  # the ids of calls merged into it

    def _end_transferred(self, leg: Leg, at_us: int) -> list[Effect]:
        return _changed(leg.apply(LegSignal.ENDED, at_us, HangupReason.TRANSFERRED))

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
        self._live_legs[leg.id] = leg
        return LegOpened(leg, call.kind)

    def _offered(self, offer: CallOffered) -> list[Effect]:
        tenant = self.directory.tenants.get(offer.tenant_id)
        if tenant is None:
            return [Reject(call_id=offer.call_id, status=404, phrase="Not Found")]
        caller_user = self.directory.user(offer.from_user) if offer.from_user else None
        destination: Route = route(tenant, offer.dialled)
        if caller_user is None and not isinstance(destination, ToUser):
            # A trunk may only reach users, never loop back out through a trunk.
            destination = Unroutable(404, "Not Found")
        if isinstance(destination, Unroutable):
            return [Reject(call_id=offer.call_id, status=destination.status,
                           phrase=destination.phrase)]

        if caller_user is not None:
            caller = Party(number=caller_user.extension, name=caller_user.name)
            kind = CallKind.INTERNAL if isinstance(destination, ToUser) else CallKind.OUTBOUND
        else:
            caller = Party(number=offer.from_number, name=offer.from_name or offer.from_number)
            kind = CallKind.INBOUND
        call = Call(id=offer.call_id, tenant_id=tenant.id, kind=kind, created_us=offer.at_us)
        self.calls[call.id] = call
        effects: list[Effect] = []
        if caller_user is not None:
            effects.append(self._open_leg(call, caller_user, Direction.OUT, caller,
                                          _callee_party(destination), offer.at_us))
        refusal = Reject(call_id=call.id, status=480, phrase="Temporarily Unavailable")
        return effects + self._call_destination(call, caller_user, caller, destination,
                                                offer.at_us, refusal)

    def _picked_up(self, signal: UserPickedUp) -> list[Effect]:
        pending = self._pending.pop(signal.call_id, None)
        call = self.calls.get(signal.call_id)
        if pending is None or call is None:
            return []
        caller = Party(number=pending.user.extension, name=pending.user.name)
        # The user's phone is answered already: it is hung up, not refused.
        return self._call_destination(call, pending.user, caller, pending.destination,
                                      signal.at_us, Hangup(call_id=call.id))

    def _call_destination(
        self,
        call: Call,
        caller_user: User | None,
        caller: Party,
        destination: ToUser | ToTrunk,
        at_us: int,
        refusal: Reject | Hangup,
    ) -> list[Effect]:
        """Open the callee's leg (if a user) and ask SIP to call and bridge the destination.

        A user with no registered device ends the call ``unavailable`` at once, and SIP is
        told ``refusal``: refuse the caller's INVITE, or hang up a click-to-dial user's
        phone that is answered already.
        """
        effects: list[Effect] = []
        callee = _callee_party(destination)
        if isinstance(destination, ToUser):
            if not self.has_devices(destination.user.id):
                effects += call.signal_all(LegSignal.ENDED, at_us, HangupReason.UNAVAILABLE)
                self._forget(call.id)
                return [*effects, refusal]
            effects.append(
                self._open_leg(call, destination.user, Direction.IN, caller, callee, at_us))
        target, caller_number = _target(destination, caller_user, caller)
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

    def live_leg_count(self) -> int:
        """Legs that have not ended, of every user (the metrics' gauge)."""
        return sum(not leg.ended for leg in self._live_legs.values())

    def live_legs_of(self, user_id: UserId) -> list[Leg]:
        """The user's legs that have not ended, newest first (then by id, for ties)."""
        legs = [leg for leg in self._live_legs.values()
                if leg.user_id == user_id and not leg.ended]
        return sorted(legs, key=lambda leg: (leg.created_us, leg.id), reverse=True)


def _callee_party(destination: ToUser | ToTrunk) -> Party:
    match destination:
        case ToUser(user=user):
            return Party(number=user.extension, name=user.name)
        case ToTrunk(number=number):
            return Party(number=number, name=number)
        case _:
            assert_never(destination)


def _routable(tenant: Tenant, destination: str) -> ToUser | ToTrunk:
    """Where ``destination`` goes in ``tenant``; ``InvalidDestination`` if nowhere."""
    target = route(tenant, destination)
    if isinstance(target, Unroutable):
        if target.status == 403:
            raise InvalidDestination(f"{destination} is a number, but this tenant has no "
                                     "trunk to call numbers through; call an extension")
        raise InvalidDestination(
            f"{destination!r} is neither an extension of this tenant nor an E.164 number; "
            "use an extension such as 200 or a number such as +32470123456"
        )
    return target


def _target(destination: ToUser | ToTrunk, caller_user: User | None,
            caller: Party) -> tuple[Target, str]:
    """What SIP rings for ``destination``, and the caller number it shows: the caller's
    own to a user; out through a trunk, the caller user's presented number (a number the
    trunk accepts), else the number the call came from."""
    match destination:
        case ToUser(user=user):
            return UserDevices(user_id=user.id), caller.number
        case ToTrunk(trunk=trunk, number=number):
            shown = caller_user.presented_number if caller_user else caller.number
            return TrunkNumber(host=trunk.host, port=trunk.port, number=number), shown
        case _:
            assert_never(destination)


def _changed(change: LegChange | None) -> list[Effect]:
    return [] if change is None else [change]
