"""``python -m hookswitch.events.receiver``: the receiver the README tells users to run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from harness import free_tcp_port
from harness.wait import wait_until
from hookswitch.events.receiver import Post, WebhookReceiver

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


def test_receiver_latency_log_has_a_line_per_post_and_quiet_prints_nothing(
    tmp_path: Path,
) -> None:
    port, log = free_tcp_port(), tmp_path / "events.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookswitch.events.receiver", "--port", str(port),
         "--latency-log", str(log), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/events"

        def up() -> bool:
            try:
                return httpx.post(url, content=b"{}", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 10)
        body = json.dumps({"state": "RINGING", "timestamp": 1_700_000_000_123_456})
        with httpx.Client() as client:  # one kept-alive connection for all three
            for _ in range(2):  # a retry is logged again: the reader dedupes
                answer = client.post(url, content=body, headers={"webhook-id": "msg_1"})
                assert answer.status_code == 200
            assert client.post(url, content=b"not json").status_code == 200
            assert answer.http_version == "HTTP/1.1"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and out == ""
    lines = [line.split(" ") for line in log.read_text().splitlines()]
    assert [line[1:] for line in lines] == [
        ["0", "unreadable", "-"],  # the probe's "{}"
        ["1700000000123456", "RINGING", "msg_1"],
        ["1700000000123456", "RINGING", "msg_1"],
        ["0", "unreadable", "-"],
    ]
    assert all(abs(float(line[0]) - time.time()) < 60 for line in lines)


def test_receiver_object_answers_as_told_and_stop_closes_kept_alive_connections() -> None:
    posts: list[Post] = []
    answers: deque[int] = deque([500, 410])
    receiver = WebhookReceiver("127.0.0.1", free_tcp_port(), on_post=posts.append,
                               answers=answers).start()
    try:
        with httpx.Client() as client:
            statuses = [client.post(receiver.url, content=b'{"n": 1}',
                                    headers={"webhook-id": f"msg_{i}"}).status_code
                        for i in range(3)]
            assert statuses == [500, 410, 200]
            assert [(p.headers["webhook-id"], p.status, p.event) for p in posts] == [
                ("msg_0", 500, {"n": 1}), ("msg_1", 410, {"n": 1}), ("msg_2", 200, {"n": 1})]
            assert all(p.verified is None for p in posts)
            receiver.stop()
            with pytest.raises(httpx.HTTPError):  # neither the open connection nor a new one
                client.post(receiver.url, content=b"{}")
        assert len(posts) == 3
    finally:
        receiver.stop()
