"""Polling helper: the only way the phone harness waits for something to happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value.

    Returns that value. Raises ``AssertionError`` carrying ``message`` when ``timeout``
    seconds pass without success. The predicate is always tried at least once, and once
    more right at the deadline, so a zero timeout means "check now".
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(interval, remaining))
    result = predicate()
    if result:
        return result
    raise AssertionError(message or f"condition not met within {timeout:.2f}s")
