"""The activation state machine: every row of its table, and illegal pairs change nothing."""

from __future__ import annotations

import pytest

from hookswitch.integrations.activation import (
    TRANSITIONS,
    ActivationInput,
    ActivationState,
    EndReason,
    IllegalTransition,
    Outcome,
    step,
)

S, On = ActivationState, ActivationInput

EXPECTED = {
    (S.ACTIVATING, On.ACCEPTED): Outcome(S.ACTIVE),
    (S.ACTIVATING, On.REFUSED): Outcome(S.FAILED, revoke_tokens=True),
    (S.ACTIVATING, On.END): Outcome(S.FAILED, revoke_tokens=True),
    (S.ACTIVE, On.END): Outcome(S.ENDED, revoke_tokens=True, announce=EndReason.USER),
    (S.FAILED, On.END): None,  # self-loop: nothing to do twice
    (S.ENDED, On.END): None,
}


def test_the_table_is_what_the_rules_say() -> None:
    rows = {(state, event) for state, row in TRANSITIONS.items() for event in row}
    assert rows == set(EXPECTED)


@pytest.mark.parametrize("row", list(EXPECTED), ids=lambda r: f"{r[0]}-{r[1]}")
def test_row(row: tuple[ActivationState, ActivationInput]) -> None:
    assert step(*row, EndReason.USER) == EXPECTED[row]


@pytest.mark.parametrize("reason", list(EndReason))
def test_every_end_is_announced_but_a_replacement(reason: EndReason) -> None:
    outcome = step(S.ACTIVE, On.END, reason)
    assert outcome is not None and outcome.revoke_tokens
    assert outcome.announce == (None if reason is EndReason.REPLACED else reason)


@pytest.mark.parametrize("row", [(state, event) for state in S for event in On
                                 if event not in TRANSITIONS[state]])
def test_illegal_pairs_raise(row: tuple[ActivationState, ActivationInput]) -> None:
    with pytest.raises(IllegalTransition):
        step(*row, EndReason.USER)


def test_an_end_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        step(S.ACTIVE, On.END)
