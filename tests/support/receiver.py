"""A real HTTP webhook receiver for tests: records every request, answers as told."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness import free_tcp_port
from harness.wait import wait_until


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at: float  # time.time() when it arrived

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    port: int = field(default_factory=free_tcp_port)
    requests: list[Received] = field(default_factory=list)
    answers: deque[int] = field(default_factory=deque)  # statuses to give first, then 200
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    status = receiver.answers.popleft() if receiver.answers else 200
                    receiver.requests.append(Received(
                        {k.lower(): v for k, v in self.headers.items()}, body, status,
                        time.time()))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[Received]:
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

    def wait_states(self, extension: str, expected: list[str], timeout: float = 10) -> list:
        wait_until(lambda: self.states(extension) == expected, timeout,
                   message=f"events of {extension}: expected {expected}, "
                           f"got {self.states(extension)}")
        return self.events(extension)
