"""The call domain driven by signals, with a directory in memory and no I/O."""

from __future__ import annotations

from hookswitch.calls.commands import (
    CallAnswered,
    CalleeRinging,
    CallEnded,
    CallOffered,
    Connect,
    HoldChanged,
    Reject,
    TrunkNumber,
    UserDevices,
)
from hookswitch.calls.directory import User
from hookswitch.calls.ids import CallId, UserId
from hookswitch.calls.leg import Direction, HangupReason, LegChange, LegState
from hookswitch.calls.switch import LegOpened, Switch
from tests.unit.calls.people import JANE, JOHN, T1


def offer(dialled: str, from_user: User | None = JANE, **kw: str) -> CallOffered:
    return CallOffered(call_id=CallId("c1"), tenant_id=T1, dialled=dialled, at_us=10,
                       from_user=from_user.id if from_user else None, **kw)


def opened(effects: list) -> list[LegOpened]:
    return [e for e in effects if isinstance(e, LegOpened)]


def changes(effects: list) -> list[tuple[str, LegState, str | None]]:
    return [(e.leg_id, e.state, e.reason) for e in effects if isinstance(e, LegChange)]


def test_internal_call_opens_an_out_leg_and_an_in_leg_and_connects(switch: Switch) -> None:
    effects = switch.handle(offer("200"))
    legs = [o.leg for o in opened(effects)]
    assert [(leg.extension, leg.direction) for leg in legs] == [
        ("210", Direction.OUT), ("200", Direction.IN)]
    assert all((leg.caller.name, leg.callee.name) == ("Jane Doe", "John Doe") for leg in legs)
    connect = effects[-1]
    assert isinstance(connect, Connect)
    assert connect.target == UserDevices(user_id=JOHN.id)
    assert (connect.caller_number, connect.caller_name) == ("210", "Jane Doe")


def test_answer_hold_resume_hangup_moves_both_legs(switch: Switch) -> None:
    switch.handle(offer("200"))
    c = CallId("c1")
    assert switch.handle(CalleeRinging(call_id=c, at_us=11)) == []
    assert changes(switch.handle(CallAnswered(call_id=c, at_us=12))) == [
        ("leg-1", LegState.ACTIVE, None), ("leg-2", LegState.ACTIVE, None)]
    assert [s for _, s, _ in changes(switch.handle(HoldChanged(call_id=c, held=True, at_us=13)))
            ] == [LegState.HELD] * 2
    assert [s for _, s, _ in changes(switch.handle(HoldChanged(call_id=c, held=False, at_us=14)))
            ] == [LegState.ACTIVE] * 2
    ended = changes(switch.handle(CallEnded(call_id=c, reason=HangupReason.COMPLETED, at_us=15)))
    assert ended == [("leg-1", LegState.HANGUP, "completed"), ("leg-2", LegState.HANGUP,
                                                              "completed")]
    assert switch.calls == {}


def test_unregistered_callee_is_rejected_480_and_caller_leg_ends_unavailable(
    switch: Switch, registered: set[UserId]
) -> None:
    registered.discard(JOHN.id)
    effects = switch.handle(offer("200"))
    assert [o.leg.extension for o in opened(effects)] == ["210"]
    assert changes(effects) == [("leg-1", LegState.HANGUP, "unavailable")]
    assert effects[-1] == Reject(call_id=CallId("c1"), status=480, phrase="Temporarily Unavailable")


def test_another_tenants_extension_is_not_found(switch: Switch) -> None:
    effects = switch.handle(offer("300"))
    assert effects == [Reject(call_id=CallId("c1"), status=404, phrase="Not Found")]


def test_e164_number_goes_out_through_the_trunk_showing_the_users_number(switch: Switch) -> None:
    effects = switch.handle(offer("+32470123456"))
    assert [(o.leg.extension, o.leg.direction) for o in opened(effects)] == [("210", Direction.OUT)]
    connect = effects[-1]
    assert isinstance(connect, Connect)
    assert connect.target == TrunkNumber(host="127.0.0.1", port=5080, number="+32470123456")
    assert connect.caller_number == "+3228990210"


def test_inbound_trunk_call_to_a_number_rings_its_user_shown_by_number(switch: Switch) -> None:
    effects = switch.handle(offer("+3228990200", from_user=None, from_number="+3228992675"))
    [leg] = [o.leg for o in opened(effects)]
    assert (leg.extension, leg.direction) == ("200", Direction.IN)
    assert (leg.caller.number, leg.caller.name) == ("+3228992675", "+3228992675")
    assert (leg.callee.number, leg.callee.name) == ("200", "John Doe")


def test_inbound_trunk_call_cannot_go_back_out_or_to_unknown_numbers(switch: Switch) -> None:
    for dialled in ("+32470123456", "+3200000000"):
        effects = switch.handle(offer(dialled, from_user=None, from_number="+3228992675"))
        assert effects == [Reject(call_id=CallId("c1"), status=404, phrase="Not Found")]


def test_signals_for_unknown_calls_are_ignored(switch: Switch) -> None:
    assert switch.handle(CallAnswered(call_id=CallId("nope"), at_us=1)) == []
