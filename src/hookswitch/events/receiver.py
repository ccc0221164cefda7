"""A small webhook receiver that prints call events and verifies their signatures.

    python -m hookswitch.events.receiver --port 9000 --secret whsec_...

Point a webhook at ``http://127.0.0.1:9000/events``. Each event is printed as one JSON line
(with ``"verified": true/false`` when a secret is given); duplicates (the same
``webhook-id``, which at-least-once delivery can produce) are printed once.

``--latency-log FILE`` also appends one line per POST to FILE, duplicates included:
``<arrival time.time()> <event timestamp µs> <state> <webhook-id>`` (``<arrival> 0
unreadable -`` for a body that is not an event); the benchmark reads its event latencies
from it. ``--quiet`` prints no events.

In a program, :class:`WebhookReceiver` is the same server as an object (the tests' receiver
is one): it calls ``on_post`` with each :class:`Post` before answering it, answers the
statuses queued in ``answers`` first (then 200, or 401 for a bad signature), speaks HTTP/1.1
with keep-alive, and ``stop()`` also closes the connections it holds open.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import IO, Any

from standardwebhooks import Webhook, WebhookVerificationError

MAX_BODY = 1_000_000  # bytes of a POST read; a longer one is cut and its connection closed


@dataclass(frozen=True)
class Post:
    """One POST to the receiver, and what it answered."""

    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int  # what the receiver answered
    at: float  # time.time() when it arrived
    verified: bool | None = None  # the signature checked out; None without a secret

    @property
    def event(self) -> Any:
        return json.loads(self.body)


OnPost = Callable[[Post], None]


class WebhookReceiver:
    """The receiver's HTTP server, bound to ``host:port`` once made; ``start()`` serves in a
    thread, ``serve_forever()`` in the caller's. ``on_post`` is called with one POST at a
    time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, *,
                 secret: str | None = None, on_post: OnPost | None = None,
                 answers: deque[int] | None = None) -> None:
        self.answers: deque[int] = answers if answers is not None else deque()
        self._host = host
        self._verifier = Webhook(secret) if secret else None
        self._on_post = on_post
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server = _Server((host, port), _handler(self))

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_address[1]}/events"

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving, stop listening and close the kept-alive connections."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.close_connections()

    def receive(self, headers: dict[str, str], body: bytes, at: float) -> int:
        """The status to answer a POST with, once ``on_post`` has seen it."""
        verified = None
        if self._verifier is not None:
            try:
                self._verifier.verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        with self._lock:
            status = self.answers.popleft() if self.answers else (401 if verified is False
                                                                 else 200)
            if self._on_post is not None:
                self._on_post(Post(headers, body, status, at, verified))
        return status


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the sender's connection pool expects

        def do_POST(self) -> None:
            at = time.time()
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(min(length, MAX_BODY))
            if length > MAX_BODY:
                self.close_connection = True  # the rest of the body is still unread
            status = receiver.receive({k.lower(): v for k, v in self.headers.items()}, body, at)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    """A thread per connection, and a record of the open ones so that stop can close them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int],
                 handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # not a connection closed by stop
            super().handle_error(request, client_address)


class Printer:
    """What the command prints: each event once (by ``webhook-id``), as a JSON line."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, post: Post) -> None:
        record: dict[str, object] = {}
        try:
            record["event"] = json.loads(post.body)
        except ValueError:
            record["event"] = post.body.decode(errors="replace")
        if post.verified is not None:
            record["verified"] = post.verified
        message_id = post.headers.get("webhook-id", "")
        if message_id and message_id in self.seen:
            return
        self.seen.add(message_id)
        record["webhook_id"] = message_id
        print(json.dumps(record), flush=True)


class LatencyLog:
    """``--latency-log``: one line per POST, ``<arrival> <timestamp µs> <state> <id>``."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, post: Post) -> None:
        try:
            event = json.loads(post.body)
            line = (f"{post.at:.6f} {int(event['timestamp'])} {event.get('state', '?')} "
                    f"{post.headers.get('webhook-id', '-')}\n")
        except (ValueError, KeyError, TypeError, AttributeError):
            line = f"{post.at:.6f} 0 unreadable -\n"
        self.out.write(line)
        self.out.flush()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", help="the webhook's whsec_... secret, to verify signatures")
    parser.add_argument("--latency-log", type=Path, metavar="FILE",
                        help="also append one latency line per POST to FILE")
    parser.add_argument("--quiet", action="store_true", help="print no events")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as files:
        callbacks: list[OnPost] = [] if args.quiet else [Printer()]
        if args.latency_log is not None:
            callbacks.append(LatencyLog(files.enter_context(
                args.latency_log.open("a", encoding="utf-8"))))

        def on_post(post: Post) -> None:
            for callback in callbacks:
                callback(post)

        receiver = WebhookReceiver(args.host, args.port, secret=args.secret, on_post=on_post)
        print(f"listening on {receiver.url}", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            receiver.serve_forever()
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
