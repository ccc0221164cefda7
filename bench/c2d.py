"""Click-to-dial latency: from the API request leaving the client to the INVITE reaching
the user's phone, at a steady request rate.

The user's phone is a plain UDP socket registered as the user (sipp does the digest
REGISTER from the same port first). Each request dials its own E.164 number, which the
phone's INVITE shows as the caller, so requests and INVITEs are matched exactly; the phone
timestamps the INVITE on arrival and answers ``486 Busy Here``, which ends the call.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import sipp
from harness.ports import free_udp_port

from .sipphone import UdpPhone, header, response, uri_user
from .stats import percentile
from .systems import CALLER, PASSWORDS, TENANT, TOKENS, Hookswitch


def busy_response(message: str, tag: str) -> bytes:
    """A ``486 Busy Here`` for the INVITE ``message`` (RFC 3261 8.2.6)."""
    return response(message, "486 Busy Here", tag)


class Phone(UdpPhone):
    """The user's phone: records when each INVITE first arrived, keyed by caller number."""

    name = "c2d-phone"

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.arrivals: dict[str, float] = {}

    def handle(self, message: str, source: tuple[str, int], arrival: float) -> None:
        if not message.startswith("INVITE "):
            return  # ACKs of our 486; nothing else is expected
        caller = uri_user(header(message, "from"))
        if caller is not None:
            self.arrivals.setdefault(caller, arrival)
        self.send(busy_response(message, uuid.uuid4().hex[:10]), source)


@dataclass(frozen=True)
class C2dResult:
    requests: int
    accepted: int
    latencies_ms: list[float]
    rate: float  # achieved request rate

    def pct(self, value: float) -> float | None:
        return percentile(self.latencies_ms, value)

    @property
    def lost(self) -> int:
        return self.requests - len(self.latencies_ms)


def run(workdir: Path, server: Hookswitch, *, requests: int, rate: float = 20.0) -> C2dResult:
    port = free_udp_port()
    sipp.register(workdir, port, server.sip, CALLER, PASSWORDS[CALLER])
    phone = Phone(port)
    phone.start()
    sent: dict[str, float] = {}
    accepted = 0
    try:
        with httpx.Client(base_url=server.http, timeout=5.0,
                          headers={"Authorization": f"Bearer {TOKENS[CALLER]}"}) as client:
            client.get("/healthz")  # open the keep-alive connection before timing
            start = time.monotonic() + 0.2
            give_up = start + requests / rate * 2 + 10  # a slow server cannot stall the run
            for i in range(requests):
                if time.monotonic() > give_up:
                    break
                time.sleep(max(0.0, start + i / rate - time.monotonic()))
                number = f"+3247{i:07d}"
                body = {"command": "click-to-dial",
                        "user": {"tenant_id": TENANT, "user_extension": CALLER},
                        "payload": {"destination": number}}
                sent[number] = time.time()
                answer = client.post("/v3/call_control/", json=body)
                accepted += answer.status_code == 202
            elapsed = time.monotonic() - start
        deadline = time.monotonic() + 5
        while len(phone.arrivals) < accepted and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        phone.stop()
    latencies = [(phone.arrivals[n] - t) * 1000 for n, t in sent.items() if n in phone.arrivals]
    achieved = (requests - 1) / elapsed if requests > 1 and elapsed > 0 else rate
    return C2dResult(requests, accepted, latencies, achieved)
