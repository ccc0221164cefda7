"""The tests' webhook receiver: the product's own (``hookswitch.events.receiver``) run in
the test's process, recording every POST and answering the statuses it is told to first."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hookswitch.events.receiver import Post, WebhookReceiver

from .ports import HOST, free_tcp_port
from .wait import WaitTimeout, wait_until

__all__ = ["Post", "Receiver"]


@dataclass
class Receiver:
    port: int = field(default_factory=free_tcp_port)
    requests: list[Post] = field(default_factory=list)
    answers: deque[int] = field(default_factory=deque)  # statuses to give first, then 200
    _server: WebhookReceiver | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/events"

    def start(self) -> Receiver:
        """Listen (again, after ``stop``) on the same port."""
        self._server = WebhookReceiver(HOST, self.port, on_post=self._record,
                                       answers=self.answers).start()
        return self

    def _record(self, post: Post) -> None:
        with self._lock:
            self.requests.append(post)

    def stop(self) -> None:
        """Stop listening and close the sender's open connections: nothing gets through."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def delivered(self) -> list[Post]:
        """Requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def events(self, extension: str | None = None) -> list[dict[str, Any]]:
        """Delivered events (deduplicated by webhook-id), optionally of one user."""
        seen: set[str] = set()
        events = []
        for request in self.delivered():
            if request.headers["webhook-id"] in seen:
                continue
            seen.add(request.headers["webhook-id"])
            event = request.event
            if extension is None or event["user_extension"] == extension:
                events.append(event)
        return events

    def states(self, extension: str) -> list[str]:
        return [e["state"] + (f"({e['reason']})" if "reason" in e else "")
                for e in self.events(extension)]

    def wait_states(self, extension: str, expected: list[str],
                    timeout: float = 10) -> list[dict[str, Any]]:
        try:
            wait_until(lambda: self.states(extension) == expected, timeout)
        except WaitTimeout:
            raise WaitTimeout(f"events of {extension}: expected {expected}, "
                              f"got {self.states(extension)}") from None
        return self.events(extension)
