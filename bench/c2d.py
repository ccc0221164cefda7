"""Click-to-dial latency: from the API request leaving the client to the INVITE reaching
the user's phone, at a steady request rate.

The user's phone is a plain UDP socket registered as the user (sipp does the digest
REGISTER from the same port first). Each request dials its own E.164 number, which the
phone's INVITE shows as the caller, so requests and INVITEs are matched exactly; the phone
timestamps the INVITE on arrival and answers ``486 Busy Here``, which ends the call.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness import sipp
from harness.ports import HOST, free_udp_port

from .stats import percentile
from .systems import CALLER, PASSWORDS, TENANT, TOKENS, Hookswitch

_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id"}
_FROM_USER = re.compile(r"sip:([^@;>]+)@")


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            out.append((_COMPACT.get(key, key), value.strip()))
    return out


def busy_response(message: str, tag: str) -> bytes:
    """A ``486 Busy Here`` for the INVITE ``message`` (RFC 3261 8.2.6)."""
    head = message.split("\r\n\r\n", 1)[0].split("\r\n")
    lines = ["SIP/2.0 486 Busy Here"]
    for name, value in _headers(head[1:]):
        if name == "to" and ";tag=" not in value:
            value += f";tag={tag}"
        if name in ("via", "from", "to", "call-id", "cseq"):
            lines.append(f"{name.title() if name != 'call-id' else 'Call-ID'}: {value}")
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


@dataclass
class Phone:
    """The user's phone: records when each INVITE first arrived, keyed by caller number."""

    port: int
    arrivals: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((HOST, self.port))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, name="c2d-phone", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            arrival = time.time()
            text = data.decode(errors="replace")
            if not text.startswith("INVITE "):
                continue  # ACKs of our 486; nothing else is expected
            found = [v for n, v in _headers(text.split("\r\n")[1:]) if n == "from"]
            match = _FROM_USER.search(found[0]) if found else None
            if match is not None:
                self.arrivals.setdefault(match.group(1), arrival)
            self._sock.sendto(busy_response(text, uuid.uuid4().hex[:10]), source)


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
