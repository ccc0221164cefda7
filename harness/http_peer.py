"""A scripted HTTP peer on a loopback port: the server that the code under test calls,
played by the test. It records every request and answers what the test's ``script``
returns, so a test asserts what was sent (auth, form fields, body) over a real socket.

    with HttpPeer(lambda request: Answer(202, {"call_leg_id": "leg-1"})) as peer:
        ...  # the code under test POSTs to peer.url
        [request] = peer.requests
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

from .ports import HOST, free_tcp_port


@dataclass(frozen=True)
class PeerRequest:
    """One request the peer received."""

    method: str
    path: str  # without the query
    query: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def form(self) -> dict[str, str]:
        """The body as an ``application/x-www-form-urlencoded`` form."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)

    def basic_auth(self) -> tuple[str, str] | None:
        """HTTP Basic credentials, form-decoded as RFC 6749 §2.3.1 has them encoded."""
        scheme, _, credentials = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(credentials).decode().partition(":")
        return unquote(user), unquote(password)


@dataclass(frozen=True)
class Answer:
    """What the peer answers: a status, a JSON body (None: empty) and headers."""

    status: int
    body: object = None
    headers: Mapping[str, str] = field(default_factory=dict)


Script = Callable[[PeerRequest], Answer]


class HttpPeer:
    """Serves ``script`` on ``127.0.0.1:port`` in a thread; a context manager that always
    stops it. One request at a time reaches the script."""

    def __init__(self, script: Script, port: int | None = None) -> None:
        self.script = script
        self.port = port if port is not None else free_tcp_port()
        self.requests: list[PeerRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, self.port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Self:
        # A short poll: stop() waits up to one interval for the serving loop to notice.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="http-peer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def answer(self, request: PeerRequest) -> Answer:
        with self._lock:
            self.requests.append(request)
            return self.script(request)

    def received(self, path: str) -> list[PeerRequest]:
        """The requests to ``path`` so far, in order."""
        with self._lock:
            return [r for r in self.requests if r.path == path]


def _handler(peer: HttpPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            target = urlsplit(self.path)
            request = PeerRequest(self.command, target.path, target.query,
                                  {k.lower(): v for k, v in self.headers.items()},
                                  self.rfile.read(length))
            answer = peer.answer(request)
            body = b"" if answer.body is None else json.dumps(answer.body).encode()
            self.send_response(answer.status)
            named = {name.lower() for name in answer.headers}
            if answer.body is not None and "content-type" not in named:
                self.send_header("Content-Type", "application/json")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args: object) -> None:
            pass

    return Handler
