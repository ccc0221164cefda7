"""GET /metrics on a real server: what a call, a refused request and the webhook
deliveries of the call's events leave in the counters."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.receiver import Receiver
from harness.server import TENANT, RunningServer
from harness.wait import wait_until


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def scrape(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = httpx.get(server.http + "/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_call_its_events_and_a_refusal_are_counted(
    server_factory, receiver: Receiver, phone  # type: ignore[no-untyped-def]
) -> None:
    server = server_factory(webhook=f'[[tenants.webhooks]]\nurl = "{receiver.url}"\n')
    jane, john = phone("210", "manual", server), phone("200", "auto", server)
    assert value(scrape(server), "hookswitch_registered_devices") == 2
    jane.dial(f"sip:200@127.0.0.1:{server.sip_port}")
    jane.wait_event("CALL_ESTABLISHED")
    server.wait_states("200", ["RINGING", "ACTIVE"])
    assert value(scrape(server), "hookswitch_live_legs") == 2
    jane.hangup()
    john.wait_event("CALL_CLOSED")
    refused = httpx.post(server.http + "/v3/call_control/", timeout=10, json={
        "command": "click-to-dial", "user": {"tenant_id": TENANT, "user_extension": "210"},
        "payload": {"destination": "999"}}, headers={"Authorization": "Bearer tok-jane"})
    assert refused.status_code == 422
    # Both legs' three events reach the webhook; the worker's counters follow (1 s).
    receiver.wait_states("210", ["RINGING", "ACTIVE", "HANGUP(completed)"])
    receiver.wait_states("200", ["RINGING", "ACTIVE", "HANGUP(completed)"])
    wait_until(lambda: value(scrape(server), "hookswitch_webhook_deliveries_total",
                             outcome="delivered") == 6, 10)
    samples = scrape(server)
    assert value(samples, "hookswitch_live_legs") == 0
    assert value(samples, "hookswitch_calls_started_total", kind="incoming") == 1
    assert value(samples, "hookswitch_calls_ended_total", reason="completed") == 1
    assert value(samples, "hookswitch_api_requests_total", command="click-to-dial",
                 status="422") == 1
    assert value(samples, "hookswitch_sip_messages_total", direction="in",
                 message="INVITE") >= 1
    assert value(samples, "hookswitch_sip_messages_total", direction="out",
                 message="BYE") == 1
    assert value(samples, "hookswitch_webhook_delivery_seconds_count") == 6
    assert value(samples, "hookswitch_outbox_depth") == 0
