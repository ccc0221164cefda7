"""The leg state machine: every state x signal pair, and illegal ones change nothing."""

from __future__ import annotations

import itertools

import pytest

from hookswitch.calls.ids import CallId, LegId, TenantId, UserId
from hookswitch.calls.leg import (
    TRANSITIONS,
    Direction,
    HangupReason,
    IllegalTransition,
    Leg,
    LegSignal,
    LegState,
    Party,
    Side,
)


def new_leg() -> Leg:
    return Leg(
        id=LegId("leg-1"),
        call_id=CallId("call-1"),
        tenant_id=TenantId("t"),
        user_id=UserId("u"),
        extension="210",
        direction=Direction.OUT,
        caller=Party(number="210", name="Jane Doe"),
        callee=Party(number="200", name="John Doe"),
        created_us=1_000,
    )


def leg_in(state: LegState) -> Leg:
    leg = new_leg()
    path = {
        LegState.RINGING: [],
        LegState.ACTIVE: [LegSignal.ANSWERED],
        LegState.HELD: [LegSignal.ANSWERED, LegSignal.HELD],
        LegState.HANGUP: [LegSignal.ENDED],
    }[state]
    for step, signal in enumerate(path, start=2):
        leg.apply(signal, step * 1_000, HangupReason.COMPLETED)
    assert leg.state is state
    return leg


EXPECTED = {
    (LegState.RINGING, LegSignal.ANSWERED): LegState.ACTIVE,
    (LegState.RINGING, LegSignal.ENDED): LegState.HANGUP,
    (LegState.ACTIVE, LegSignal.HELD): LegState.HELD,
    (LegState.ACTIVE, LegSignal.ENDED): LegState.HANGUP,
    (LegState.HELD, LegSignal.RESUMED): LegState.ACTIVE,
    (LegState.HELD, LegSignal.ENDED): LegState.HANGUP,
    (LegState.ACTIVE, LegSignal.REDIALED): LegState.RINGING,
    (LegState.HELD, LegSignal.REDIALED): LegState.RINGING,
    (LegState.ACTIVE, LegSignal.RECONNECTED): LegState.ACTIVE,
    (LegState.HELD, LegSignal.RECONNECTED): LegState.ACTIVE,
}
NEW_PARTY = Party(number="230", name="Ann Lee")
SELF_LOOPS = {
    (LegState.ACTIVE, LegSignal.ANSWERED),
    (LegState.ACTIVE, LegSignal.RESUMED),
    (LegState.HELD, LegSignal.HELD),
    (LegState.HANGUP, LegSignal.ENDED),
}


@pytest.mark.parametrize(("state", "signal"), list(itertools.product(LegState, LegSignal)))
def test_every_state_and_signal(state: LegState, signal: LegSignal) -> None:
    leg = leg_in(state)
    history_before = list(leg.history)
    if (state, signal) in EXPECTED:
        change = leg.apply(signal, 99_000, HangupReason.API, NEW_PARTY)
        assert change is not None
        assert leg.state is EXPECTED[state, signal] is change.state
        assert change.sequence == len(history_before) + 1
        assert leg.history == [*history_before, change]
    elif (state, signal) in SELF_LOOPS:
        assert leg.apply(signal, 99_000, HangupReason.API, NEW_PARTY) is None
        assert leg.state is state
        assert leg.history == history_before
    else:
        with pytest.raises(IllegalTransition):
            leg.apply(signal, 99_000, HangupReason.API, NEW_PARTY)
        assert leg.state is state
        assert leg.history == history_before


def test_table_covers_exactly_the_expected_pairs() -> None:
    table = {(s, g) for s, signals in TRANSITIONS.items() for g in signals}
    assert table == set(EXPECTED) | SELF_LOOPS


def test_a_leg_is_born_ringing_with_sequence_one() -> None:
    leg = new_leg()
    assert leg.state is LegState.RINGING
    assert [(c.state, c.sequence, c.at_us) for c in leg.history] == [(LegState.RINGING, 1, 1_000)]


def test_hangup_is_reached_once_with_its_reason_and_time() -> None:
    leg = new_leg()
    leg.apply(LegSignal.ANSWERED, 2_000)
    change = leg.apply(LegSignal.ENDED, 3_000, HangupReason.BUSY)
    assert change is not None and change.reason is HangupReason.BUSY
    assert leg.apply(LegSignal.ENDED, 4_000, HangupReason.API) is None
    assert (leg.reason, leg.answered_us, leg.ended_us) == (HangupReason.BUSY, 2_000, 3_000)
    assert [c.state for c in leg.history] == [LegState.RINGING, LegState.ACTIVE, LegState.HANGUP]


def test_ending_without_a_reason_is_refused() -> None:
    leg = new_leg()
    with pytest.raises(ValueError, match="reason"):
        leg.apply(LegSignal.ENDED, 2_000)
    assert leg.state is LegState.RINGING


def test_resume_after_hold_keeps_the_first_answer_time() -> None:
    leg = new_leg()
    leg.apply(LegSignal.ANSWERED, 2_000)
    leg.apply(LegSignal.HELD, 3_000)
    leg.apply(LegSignal.RESUMED, 4_000)
    assert leg.answered_us == 2_000
    assert [c.sequence for c in leg.history] == [1, 2, 3, 4]


@pytest.mark.parametrize("direction", list(Direction))
def test_a_transfer_gives_the_leg_its_new_other_party(direction: Direction) -> None:
    leg = new_leg()
    leg.direction = direction
    leg.apply(LegSignal.ANSWERED, 2_000)
    before = (leg.caller, leg.callee)
    change = leg.apply(LegSignal.REDIALED, 3_000, other=NEW_PARTY)
    assert change is not None and change.other == NEW_PARTY
    assert leg.other == NEW_PARTY and leg.state is LegState.RINGING
    # Only the other end changes: the user's own end stays.
    mine = before[0] if direction is Direction.OUT else before[1]
    assert (leg.caller if direction is Direction.OUT else leg.callee) == mine
    leg.apply(LegSignal.ANSWERED, 4_000)
    assert leg.answered_us == 2_000, "answered once; a transfer is not a new answer"


@pytest.mark.parametrize("signal", [LegSignal.REDIALED, LegSignal.RECONNECTED])
def test_a_transfer_without_the_new_party_is_refused(signal: LegSignal) -> None:
    leg = leg_in(LegState.ACTIVE)
    with pytest.raises(ValueError, match="other party"):
        leg.apply(signal, 5_000)
    assert leg.state is LegState.ACTIVE


def test_sides_start_from_the_direction() -> None:
    leg = new_leg()
    assert leg.side is Side.CALLER and leg.side.other is Side.CALLEE
    leg_in_ = Leg(id=LegId("leg-2"), call_id=CallId("call-1"), tenant_id=TenantId("t"),
                  user_id=UserId("v"), extension="200", direction=Direction.IN,
                  caller=Party(number="210", name="Jane Doe"),
                  callee=Party(number="200", name="John Doe"), created_us=1_000)
    assert leg_in_.side is Side.CALLEE and leg_in_.other.number == "210"
