"""Polling helper: the only way the harness (tests and benchmark) waits for something.

A wait that runs out raises :class:`WaitTimeout`, an ``AssertionError``: pytest shows it as
a failed check, and the benchmark catches it like any other failure of a phase."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """What ``wait_until`` raises when the condition did not come true in time."""


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value.

    Returns that value. Raises :class:`WaitTimeout` (an ``AssertionError``) carrying
    ``message`` when ``timeout`` seconds pass without success. The predicate is always
    tried at least once, and once more right at the deadline, so a zero timeout means
    "check now".
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
    raise WaitTimeout(message or f"condition not met within {timeout:.2f}s")
