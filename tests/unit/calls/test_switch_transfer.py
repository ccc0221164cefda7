"""Hold, resume, blind and attended transfer in the call domain: what each leg records and
which command goes to SIP."""

from __future__ import annotations

import pytest

from hookswitch.calls.call import Call
from hookswitch.calls.commands import (
    CallAnswered,
    CallEnded,
    CallOffered,
    Hangup,
    Hold,
    HoldChanged,
    Merge,
    Resume,
    Transfer,
    TransferAsked,
    TrunkNumber,
    UserDevices,
)
from hookswitch.calls.errors import InvalidDestination
from hookswitch.calls.ids import CallId, UserId
from hookswitch.calls.leg import Direction, HangupReason, Leg, LegChange, LegState, Party, Side
from hookswitch.calls.switch import LegOpened, Switch
from tests.unit.calls.people import ALEX, JANE, T1


def answered_call(switch: Switch, call_id: str, dialled: str, from_user: UserId | None,
                  caller_number: str = "", at_us: int = 10) -> Call:
    """A call offered and answered; returns it."""
    switch.handle(CallOffered(call_id=CallId(call_id), tenant_id=T1, dialled=dialled,
                              at_us=at_us, from_user=from_user, from_number=caller_number,
                              from_name=caller_number))
    switch.handle(CallAnswered(call_id=CallId(call_id), at_us=at_us + 1))
    return switch.calls[CallId(call_id)]


def leg_of(call: Call, extension: str) -> Leg:
    return next(leg for leg in call.legs if leg.extension == extension)


def changes(effects: list) -> list[tuple[str, LegState, str | None]]:
    return [(e.leg_id, e.state, e.reason) for e in effects if isinstance(e, LegChange)]


def test_hold_and_resume_go_to_sip_for_the_users_side_and_legs_follow_its_report(
        switch: Switch) -> None:
    call = answered_call(switch, "c1", "200", JANE.id)
    jane, john = leg_of(call, "210"), leg_of(call, "200")
    assert switch.hold(john) == [Hold(call_id=call.id, side=Side.CALLEE)]
    assert switch.hold(jane) == [Hold(call_id=call.id, side=Side.CALLER)]
    assert [s for _, s, _ in changes(switch.handle(HoldChanged(call_id=call.id, held=True,
                                                               at_us=20)))] == [LegState.HELD] * 2
    assert switch.resume(john) == [Resume(call_id=call.id, side=Side.CALLEE)]


def test_blind_transfer_to_an_extension_ends_the_users_leg_and_redials_the_party(
        switch: Switch) -> None:
    call = answered_call(switch, "c1", "200", JANE.id)  # Jane calls John; John transfers
    jane, john = leg_of(call, "210"), leg_of(call, "200")
    new_leg, effects = switch.transfer(john, "202", at_us=30)
    assert changes(effects) == [(john.id, LegState.HANGUP, "transferred"),
                                (jane.id, LegState.RINGING, None)]
    assert jane.callee == Party(number="202", name="Alex Roe")
    assert jane.side is Side.CALLER
    assert new_leg is not None and new_leg.extension == "202"
    assert (new_leg.direction, new_leg.caller) == (Direction.IN,
                                                   Party(number="210", name="Jane Doe"))
    assert [e for e in effects if isinstance(e, LegOpened)] == [LegOpened(new_leg, call.kind)]
    transfer = effects[-1]
    assert isinstance(transfer, Transfer)
    assert (transfer.keep, transfer.target, transfer.caller_number) == (
        Side.CALLER, UserDevices(user_id=ALEX.id), "210")
    # Alex answers: the kept party and Alex are ACTIVE; the transferred leg stays ended.
    assert changes(switch.handle(CallAnswered(call_id=call.id, at_us=40))) == [
        (jane.id, LegState.ACTIVE, None), (new_leg.id, LegState.ACTIVE, None)]
    assert john.reason is HangupReason.TRANSFERRED


def test_a_failed_blind_transfer_ends_the_kept_partys_leg_with_that_reason(
        switch: Switch) -> None:
    call = answered_call(switch, "c1", "200", JANE.id)
    jane, john = leg_of(call, "210"), leg_of(call, "200")
    new_leg, _ = switch.transfer(jane, "202", at_us=30)  # the caller transfers John to Alex
    assert john.side is Side.CALLER and john.caller == Party(number="202", name="Alex Roe")
    assert changes(switch.handle(CallEnded(call_id=call.id, reason=HangupReason.BUSY,
                                           at_us=40))) == [
        (john.id, LegState.HANGUP, "busy"), (new_leg.id, LegState.HANGUP, "busy")]  # type: ignore[union-attr]
    assert switch.calls == {}


def test_a_trunk_call_is_transferred_to_an_extension_and_out_to_a_number(
        switch: Switch) -> None:
    call = answered_call(switch, "c1", "+3228990200", None, caller_number="+32470000001")
    john = leg_of(call, "200")
    new_leg, effects = switch.transfer(john, "210", at_us=30)
    assert new_leg is not None
    assert new_leg.caller == Party(number="+32470000001", name="+32470000001")
    assert [leg.extension for leg in call.legs if not leg.ended] == ["210"]
    # Jane sends it on out through the trunk, showing her own number.
    switch.handle(CallAnswered(call_id=call.id, at_us=40))
    none, effects = switch.transfer(new_leg, "+32470999999", at_us=50)
    transfer = effects[-1]
    assert none is None and isinstance(transfer, Transfer)
    assert transfer.target == TrunkNumber(host="127.0.0.1", port=5080, number="+32470999999")
    assert transfer.caller_number == "+3228990210"
    assert [leg.ended for leg in call.legs] == [True, True]


@pytest.mark.parametrize(("destination", "message"), [
    ("200", "own extension"), ("210", "the party being transferred"),
    ("999", "neither an extension"),
])
def test_transfer_to_nowhere_useful_is_refused_before_anything_changes(
        switch: Switch, destination: str, message: str) -> None:
    call = answered_call(switch, "c1", "200", JANE.id)
    john = leg_of(call, "200")
    with pytest.raises(InvalidDestination, match=message):
        switch.transfer(john, destination, at_us=30)
    assert [leg.state for leg in call.legs] == [LegState.ACTIVE] * 2


def test_attended_transfer_joins_the_two_other_parties_in_one_call(switch: Switch) -> None:
    first = answered_call(switch, "c1", "200", JANE.id)  # Jane -> John (to be held)
    second = answered_call(switch, "c2", "202", JANE.id, at_us=20)  # Jane -> Alex
    jane1, john = leg_of(first, "210"), leg_of(first, "200")
    jane2, alex = leg_of(second, "210"), leg_of(second, "202")
    effects = switch.merge(jane1, jane2, at_us=30)
    assert changes(effects) == [
        (jane1.id, LegState.HANGUP, "transferred"), (jane2.id, LegState.HANGUP, "transferred"),
        (john.id, LegState.ACTIVE, None), (alex.id, LegState.ACTIVE, None)]
    assert john.caller == Party(number="202", name="Alex Roe")
    assert alex.caller == Party(number="200", name="John Doe")  # Alex's leg is IN
    assert alex.side is Side.CALLER  # in Jane's place
    assert effects[-1] == Merge(call_id=first.id, user_side=Side.CALLER,
                                other_call_id=second.id, other_user_side=Side.CALLER)
    # One call from now on: either id finds it, and its end ends every leg once.
    assert switch.call_of(alex) is first and switch.calls[second.id] is first
    assert changes(switch.handle(CallEnded(call_id=first.id, reason=HangupReason.COMPLETED,
                                           at_us=40))) == [
        (john.id, LegState.HANGUP, "completed"), (alex.id, LegState.HANGUP, "completed")]
    assert switch.calls == {}


def test_attended_transfer_within_one_call_is_refused(switch: Switch) -> None:
    call = answered_call(switch, "c1", "200", JANE.id)
    with pytest.raises(InvalidDestination) as raised:
        switch.merge(leg_of(call, "210"), leg_of(call, "200"), at_us=30)
    assert raised.value.field == "payload.target_call_leg_id"


def test_a_phones_own_transfer_is_the_blind_transfer_of_its_users_leg(
        switch: Switch) -> None:
    call = answered_call(switch, "c1", "200", JANE.id)  # John's phone sends REFER to 202
    john = leg_of(call, "200")
    effects = switch.handle(TransferAsked(call_id=call.id, side=Side.CALLEE,
                                          destination="202", at_us=30))
    assert john.reason is HangupReason.TRANSFERRED
    transfer = effects[-1]
    assert isinstance(transfer, Transfer) and transfer.target == UserDevices(user_id=ALEX.id)


@pytest.mark.parametrize(("side", "destination"), [
    (Side.CALLER, "202"),  # the trunk's side: no user to act for
    (Side.CALLEE, "999"),  # nowhere to go
])
def test_a_refer_that_cannot_be_carried_out_hangs_the_other_party_up(
        switch: Switch, side: Side, destination: str) -> None:
    call = answered_call(switch, "c1", "+3228990200", None, caller_number="+32470000001")
    assert switch.handle(TransferAsked(call_id=call.id, side=side, destination=destination,
                                       at_us=30)) == [
        Hangup(call_id=call.id, reason=HangupReason.UNAVAILABLE)]
