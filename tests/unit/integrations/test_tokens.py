"""What a presented refresh token means, and the sealed pair of a retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hookswitch.integrations.tokens import (
    Decision,
    RefreshState,
    decide,
    new_pair,
    seal,
    unseal,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=10)
LATER = NOW + timedelta(days=30)


def state(*, used_ago: float | None = None, revoked: bool = False, successor_unused: bool = True,
          expires: datetime = LATER) -> RefreshState:
    used = NOW - timedelta(seconds=used_ago) if used_ago is not None else None
    return RefreshState(expires_at=expires, used_at=used, revoked=revoked,
                        successor_unused=successor_unused)


@pytest.mark.parametrize(("token", "expected"), [
    (None, Decision.INVALID),
    (state(), Decision.ROTATE),
    (state(expires=NOW), Decision.INVALID),
    (state(revoked=True), Decision.INVALID),
    (state(used_ago=3), Decision.REPLAY),
    (state(used_ago=10), Decision.REPLAY),
    (state(used_ago=10.5), Decision.REUSE),  # after the grace window: theft
    (state(used_ago=3, successor_unused=False), Decision.REUSE),  # not the previous one
    (state(used_ago=3, revoked=True), Decision.INVALID),  # the family is gone already
], ids=["unknown", "live", "expired", "revoked", "retry", "retry-at-the-edge", "late-reuse",
        "older-reuse", "revoked-family"])
def test_decisions(token: RefreshState | None, expected: Decision) -> None:
    assert decide(token, NOW, GRACE) is expected


def test_the_sealed_pair_opens_only_with_the_token_it_replaced() -> None:
    pair = new_pair(3600)
    sealed = seal(pair, "hsr_previous")
    assert pair.access_token not in sealed and pair.refresh_token not in sealed
    assert unseal(sealed, "hsr_previous") == pair
    assert unseal(sealed, "hsr_someone_else") is None


def test_pairs_are_new_each_time_and_answer_as_rfc_6749_says() -> None:
    first, second = new_pair(3600), new_pair(3600)
    assert first.refresh_token != second.refresh_token
    assert first.answer() == {"access_token": first.access_token, "token_type": "Bearer",
                              "expires_in": 3600, "refresh_token": first.refresh_token,
                              "scope": "call-control call-events"}
