"""Slowing password guessing down, per source address and user."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Tarpit:
    """Slows password guessing down without ever refusing a right password.

    Failures are counted per (source address, user), so a phone behind the same NAT
    address as a guesser is not held up for its own user. After ``free_failures`` within
    ``window`` seconds, the challenges and refusals for that pair wait 0.25 s, then twice
    as long each time, up to ``max_delay``. A right password is answered at once and
    clears the pair. Memory stays bounded under a scan (``max_keys`` pairs, each with at
    most ``free_failures`` plus a few timestamps).
    """

    free_failures: int = 5
    window: float = 60.0
    max_delay: float = 8.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def failed(self, source: str, user: str) -> None:
        key = (source, user)
        # Enough history to reach max_delay: 0.25 s doubled 5 times is 8 s.
        recent = self._failures.pop(key, None) or deque(maxlen=self.free_failures + 8)
        recent.append(self.clock())
        self._failures[key] = recent  # re-inserted: the dict is oldest-first
        while len(self._failures) > self.max_keys:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, source: str, user: str) -> None:
        self._failures.pop((source, user), None)

    def delay(self, source: str, user: str) -> float:
        failures = self._failures.get((source, user))
        if not failures:
            return 0.0
        now = self.clock()
        excess = sum(1 for at in failures if now - at < self.window) - self.free_failures
        if excess <= 0:
            return 0.0
        return float(min(self.max_delay, 0.25 * 2 ** (excess - 1)))
