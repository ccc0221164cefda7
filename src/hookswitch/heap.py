"""Garbage-collector settings for the long-running processes (server and events worker)."""

from __future__ import annotations

import gc

# Generation-0 collections every 10,000 net allocations instead of 700: a call allocates
# thousands of short-lived objects (sippy messages, headers, SQL parameters), so the
# default threshold ran a collection several times per call.
THRESHOLDS = (10_000, 20, 20)


def settle_after_startup() -> None:
    """Move what start-up allocated (modules, tables, the app) out of the collector's way,
    and collect young objects less often.

    Measured with ``bench.hotpath`` at 205 calls/s, three runs each, interleaved: failed
    calls 90 / 194 / 26 without this, 35 / 17 / 0 with it; CPU 10.4 → 9.2 ms per call.
    """
    gc.collect()
    gc.freeze()  # objects alive now are never traversed by later collections
    gc.set_threshold(*THRESHOLDS)
