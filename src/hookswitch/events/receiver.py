"""A small webhook receiver that prints call events and verifies their signatures.

    python -m hookswitch.events.receiver --port 9000 --secret whsec_...

Point a webhook at ``http://127.0.0.1:9000/events``. Each event is printed as one JSON line
(with ``"verified": true/false`` when a secret is given); duplicates (the same
``webhook-id``, which at-least-once delivery can produce) are printed once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


def make_handler(secret: str | None, seen: set[str], lock: threading.Lock) -> type:
    verifier = Webhook(secret) if secret else None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(min(length, 1_000_000))
            headers = {k.lower(): v for k, v in self.headers.items()}
            record: dict[str, object] = {}
            try:
                record["event"] = json.loads(body)
            except ValueError:
                record["event"] = body.decode(errors="replace")
            if verifier is not None:
                try:
                    verifier.verify(body, headers)
                    record["verified"] = True
                except WebhookVerificationError:
                    record["verified"] = False
            self.send_response(200 if record.get("verified", True) else 401)
            self.end_headers()
            message_id = headers.get("webhook-id", "")
            with lock:
                if message_id and message_id in seen:
                    return
                seen.add(message_id)
                record["webhook_id"] = message_id
                print(json.dumps(record), flush=True)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", help="the webhook's whsec_... secret, to verify signatures")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port),
                                 make_handler(args.secret, set(), threading.Lock()))
    print(f"listening on http://{args.host}:{args.port}/events", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
