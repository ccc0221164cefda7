"""Prometheus metrics (``GET /metrics``): the counters the server process keeps, in one
registry of its own (not prometheus-client's global one), and the text the events worker
sends of its own (``WorkerMetrics``), shown together.

Rooms count where the fact happens (SIP messages in ``sip/udp.py``, calls and the worker
in ``server.py``, API requests in ``api/``); what is read off live state (legs, devices)
is a gauge asked at scrape time, so the hot path pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

SIP_MESSAGES = Counter(
    "hookswitch_sip_messages", "SIP datagrams sent and received, by direction and by "
    "request method or response status code", ["direction", "message"], registry=REGISTRY)
CALLS_STARTED = Counter(
    "hookswitch_calls_started", "Calls started: offered by a phone or trunk (incoming), or "
    "by click-to-dial", ["kind"], registry=REGISTRY)
CALLS_ENDED = Counter(
    "hookswitch_calls_ended", "Calls ended, by the reason their legs ended with",
    ["reason"], registry=REGISTRY)
API_REQUESTS = Counter(
    "hookswitch_api_requests", "Call-control API requests, by command and HTTP status",
    ["command", "status"], registry=REGISTRY)
WORKER_RESTARTS = Counter(
    "hookswitch_events_worker_restarts", "Times the events worker died and was started "
    "again", registry=REGISTRY)

# Request methods kept as their own label value; anything else counts as "other" (a label
# per made-up method would let a sender grow the metrics without bound).
METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO",
                     "UPDATE", "REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "PRACK",
                     "PUBLISH"})


def sip_message(data: bytes) -> str:
    """The label of a SIP datagram: its method, or its status code for a response."""
    if data.startswith(b"SIP/2.0 "):
        code = data[8:11]
        return code.decode() if code.isdigit() else "other"
    method = data[:data.find(b" ")].decode(errors="replace")
    return method if method in METHODS else "other"


def count_sip(direction: str, data: bytes) -> None:
    SIP_MESSAGES.labels(direction, sip_message(data)).inc()


class LiveGauges(Collector):
    """Gauges read off live state when scraped: each a name, help and a function."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, (documentation, read) in self._gauges.items():
            yield GaugeMetricFamily(name, documentation, value=read())


def exposition(worker_text: str) -> bytes:
    """The server's metrics, then the last ones the events worker sent."""
    return generate_latest(REGISTRY) + worker_text.encode()


_live: LiveGauges | None = None


def show_live(gauges: dict[str, tuple[str, Callable[[], float]]]) -> None:
    """Read these gauges at each scrape (a server built again replaces the last ones)."""
    global _live
    if _live is not None:
        REGISTRY.unregister(_live)
    _live = LiveGauges(gauges)
    REGISTRY.register(_live)
