"""A live event stream (``GET /v3/events``) read in a thread, for the tests."""

from __future__ import annotations

import threading

import httpx

from harness.server import RunningServer
from harness.wait import wait_until


class OpenStream:
    """``GET /v3/events`` read in a thread until the server ends it."""

    def __init__(self, server: RunningServer, token: str, last_event_id: str | None = None):
        self.server = server
        self.headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = last_event_id
        self.status: int | None = None
        self.lines: list[str] = []
        self.ended_cleanly = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_until(lambda: self.status is not None or self.error is not None, 10,
                   message="the stream did not answer")

    def _read(self) -> None:
        try:
            with httpx.stream("GET", self.server.http + "/v3/events", headers=self.headers,
                              timeout=httpx.Timeout(5, read=60)) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    self.lines.append(line)
            self.ended_cleanly = True
        except BaseException as exc:  # reported to the test
            self.error = exc

    @property
    def open(self) -> bool:
        return self._thread.is_alive()
