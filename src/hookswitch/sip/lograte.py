"""One log line per key per window, so that hostile traffic cannot flood the log.

A scanner sends thousands of bad datagrams a second; each is dropped with a warning, but
only the first for a given key (a destination, a source, a kind of error) within
``window`` seconds is written; the next line after the window says how many were held
back. Used from the SIP thread and from sippy's sender and receiver threads, hence the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import structlog

MAX_KEYS = 10_000  # under a scan from many addresses, memory stays bounded


class LogOncePerWindow:
    def __init__(
        self,
        write: Callable[..., Any],
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (when the last line was written, lines held back since)
        self._seen: dict[Hashable, tuple[float, int]] = {}

    def __call__(self, key: Hashable, event: str, **fields: Any) -> bool:
        """Write ``event`` unless ``key`` was written less than ``window`` seconds ago.

        Returns whether a line was written.
        """
        now = self._clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < self._window:
                self._seen[key] = (last[0], last[1] + 1)
                return False
            self._seen.pop(key, None)
            if len(self._seen) >= MAX_KEYS:
                self._seen.pop(next(iter(self._seen)))  # the oldest key
            self._seen[key] = (now, 0)
        held_back = last[1] if last is not None else 0
        if held_back:
            fields["held_back"] = held_back
        self._write(event, **fields)
        return True


def short(text: str, limit: int = 200) -> str:
    """A log field of bounded length (an error may quote a whole header)."""
    return text if len(text) <= limit else text[:limit] + "..."


# The SIP side's warnings about what peers sent: one line per key per minute.
warn_once = LogOncePerWindow(structlog.get_logger("hookswitch.sip").warning)
