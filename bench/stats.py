"""Small statistics helpers (nearest-rank percentiles, rounding for the table)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for the table and the SUMMARY line (``n/a`` when not measured)."""
    if value is None:
        return "n/a"
    if digits == 0:
        return str(round(value))
    return f"{value:.{digits}f}"
