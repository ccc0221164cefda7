"""``python -m hookswitch.events.receiver``: the receiver the README tells users to run."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from harness import free_tcp_port
from harness.wait import wait_until

SECRET = "whsec_gibD9JIsttCK9eBLyfM/6br/ZZD3a5n3"


def test_receiver_prints_each_event_once_and_checks_signatures() -> None:
    port = free_tcp_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookswitch.events.receiver", "--port", str(port),
         "--secret", SECRET], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/events"

        def up() -> bool:
            try:
                httpx.post(url, content=b"{}", timeout=1)
                return True
            except httpx.HTTPError:
                return False

        wait_until(up, 10)
        body = json.dumps({"state": "RINGING", "id": "leg-1"})
        now = datetime.now(UTC)
        signed = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
                  "webhook-signature": Webhook(SECRET).sign("msg_1", now, body)}
        assert httpx.post(url, content=body, headers=signed).status_code == 200
        assert httpx.post(url, content=body, headers=signed).status_code == 200  # a retry
        forged = {**signed, "webhook-id": "msg_2"}
        assert httpx.post(url, content=body, headers=forged).status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines()]
    printed = [(line["webhook_id"], line["verified"]) for line in lines if line["webhook_id"]]
    assert printed == [("msg_1", True), ("msg_2", False)]
    assert lines[-1]["event"] == {"state": "RINGING", "id": "leg-1"}
