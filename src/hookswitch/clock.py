"""Wall-clock time as the call domain receives it: microseconds since the epoch."""

from __future__ import annotations

import time


def now_us() -> int:
    return time.time_ns() // 1000
