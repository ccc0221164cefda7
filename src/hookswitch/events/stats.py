"""The events worker's metrics (webhook deliveries, the outbox): counted in the worker
process, in a registry of its own, and sent to the server as text once a second
(``worker.WorkerMetrics``), which shows them on ``GET /metrics`` after its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

WORKER_REGISTRY = CollectorRegistry(auto_describe=True)

DELIVERIES = Counter(
    "hookswitch_webhook_deliveries", "Webhook delivery attempts, by outcome: delivered (a "
    "2xx), retry (to be tried again), failed (parked)", ["outcome"], registry=WORKER_REGISTRY)
DELIVERY_SECONDS = Histogram(
    "hookswitch_webhook_delivery_seconds", "From a delivery being written to the outbox to "
    "its webhook's 2xx, retries included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
    registry=WORKER_REGISTRY)
OUTBOX_DEPTH = Gauge(
    "hookswitch_outbox_depth", "Deliveries the events worker holds, not yet delivered or "
    "parked", registry=WORKER_REGISTRY)


def worker_text() -> str:
    return generate_latest(WORKER_REGISTRY).decode()
