"""Webhook retries: exponential backoff, capped, spread, and Retry-After honoured."""

from __future__ import annotations

import pytest

from hookswitch.events.sender import RetryPolicy

POLICY = RetryPolicy(first_interval=1.0, max_interval=600.0, give_up_after=3600.0)


@pytest.mark.parametrize(("attempts", "nominal"), [(1, 1), (2, 2), (3, 4), (6, 32), (10, 512),
                                                   (11, 600), (40, 600)])
def test_doubling_up_to_the_cap_within_ten_percent(attempts: int, nominal: float) -> None:
    delays = [POLICY.next_delay(attempts, None) for _ in range(200)]
    assert all(nominal * 0.9 <= delay <= nominal * 1.1 for delay in delays)
    assert len(set(delays)) > 1  # spread, so many failed events do not retry in lockstep


def test_retry_after_is_a_floor_but_not_above_the_cap() -> None:
    assert POLICY.next_delay(1, 30) >= 27
    assert POLICY.next_delay(1, 10_000) <= 660
