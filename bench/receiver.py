"""The webhook receiver of the benchmark, run as its own process:

    python -m bench.receiver --port 9000 --out events.log

Answers every POST ``204`` (HTTP/1.1 keep-alive, as a production receiver would) and
appends one line per event: ``<arrival time.time()> <event timestamp µs> <state>
<webhook-id>``. :func:`read_events` turns the file back into latencies.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO


def make_handler(out: IO[str], lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            arrival = time.time()
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            try:
                event = json.loads(body)
                line = (f"{arrival:.6f} {int(event['timestamp'])} {event.get('state', '?')} "
                        f"{self.headers.get('webhook-id', '-')}\n")
            except (ValueError, KeyError, TypeError):
                line = f"{arrival:.6f} 0 unreadable -\n"
            with lock:
                out.write(line)
                out.flush()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def serve(port: int, path: Path) -> None:
    with path.open("a", encoding="utf-8") as out:
        server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(out, threading.Lock()))
        server.daemon_threads = True

        def stop(*_: object) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.serve_forever(poll_interval=0.2)
        server.server_close()


@dataclass(frozen=True)
class Event:
    arrival: float
    timestamp_us: int
    state: str
    uid: str

    @property
    def latency_ms(self) -> float:
        return (self.arrival - self.timestamp_us / 1e6) * 1000


def read_events(path: Path, offset: int = 0) -> tuple[list[Event], int]:
    """Events written after byte ``offset`` (complete lines only), and the new offset."""
    if not path.exists():
        return [], offset
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].decode().splitlines():
        arrival, stamp, state, uid = raw.split(" ", 3)
        if state != "unreadable":
            events.append(Event(float(arrival), int(stamp), state, uid))
    return events, offset + end


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark webhook receiver")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    serve(args.port, args.out)


if __name__ == "__main__":
    main()
