"""The one thread that runs sippy. Imports no sippy at module level on purpose.

sippy's dispatcher (``ED2``) is created when ``sippy.Core.EventDispatcher`` is first
imported, and its cross-thread wake-up signal (SIGURG) goes to the thread that created it.
Created in the main thread while the loop runs here, ``callFromThread`` would wait for the
loop's next 10 ms tick (measured: 6.6 ms median per hand-off); created here, it runs in
about 0.1 ms. So this thread imports sippy first, before anything else in the process does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class SipThread:
    def __init__(self) -> None:
        self._target: Callable[[], None] | None = None
        self._go = threading.Event()
        self._created = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="sip", daemon=True)
        self.thread.start()
        self._created.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            import sippy.Core.EventDispatcher  # noqa: F401  (creates ED2 in this thread)
        except BaseException as exc:  # reported to the constructor
            self._error = exc
            self._created.set()
            return
        self._created.set()
        self._go.wait()
        if self._target is not None:
            self._target()

    def run(self, target: Callable[[], None]) -> None:
        """Run ``target`` (sippy's loop) in this thread."""
        self._target = target
        self._go.set()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

