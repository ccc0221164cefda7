"""CPU time per call at fixed offered rates (the same rates for both systems), and what a
Prometheus scrape of ``GET /metrics`` adds to hookswitch's.

CPU per call is utime + stime of the system's processes (``procs.cpu_seconds``: hookswitch's
server and its events worker, or b2bua_simple) over a step and its event drain, divided by
the calls completed. Unlike rates and latencies it hardly moves when other processes load
the machine, so it compares two systems, or two builds, on a busy box too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from . import procs
from .callrate import Step


def cpu_ms_per_call(steps: Iterable[Step]) -> float | None:
    """Total CPU over total completed calls of ``steps`` (None without a completed call)."""
    steps = list(steps)
    calls = sum(s.load.counts.successful for s in steps)
    return sum(s.cpu_s for s in steps) * 1000 / calls if calls else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@dataclass
class MetricsCost:
    """hookswitch at one rate, steps without and with ``GET /metrics`` scraped every
    ``interval_s`` (as Prometheus would), interleaved; and the server's CPU per scrape,
    measured idle over back-to-back scrapes."""

    rate: float
    interval_s: float
    plain: list[Step] = field(default_factory=list)
    scraped: list[Step] = field(default_factory=list)
    scrapes: int = 0  # scrapes during the scraped steps
    scrape_cpu_ms: float | None = None  # server CPU per scrape (idle, back to back)
    scrape_bytes: int = 0  # size of one exposition

    @property
    def ms_per_call(self) -> float | None:
        """Scraped minus not scraped CPU ms per call (noisy: compare with
        ``derived_ms_per_call``)."""
        on, off = cpu_ms_per_call(self.scraped), cpu_ms_per_call(self.plain)
        return on - off if on is not None and off is not None else None

    @property
    def derived_ms_per_call(self) -> float | None:
        """CPU per scrape spread over the calls of one scrape interval."""
        if self.scrape_cpu_ms is None:
            return None
        return self.scrape_cpu_ms / (self.rate * self.interval_s)


class Scraper:
    """A thread that GETs ``url`` every ``interval_s`` until stopped or ``limit_s`` passed."""

    def __init__(self, url: str, interval_s: float = 1.0, limit_s: float = 600.0) -> None:
        self.url, self.interval_s, self.limit_s = url, interval_s, limit_s
        self.count = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    client.get(self.url).raise_for_status()
                    self.count += 1
                except httpx.HTTPError:
                    self.errors += 1
                self._stop.wait(self.interval_s)


def scrape_cost(pid: int, url: str, scrapes: int = 50) -> tuple[float, int]:
    """Server CPU ms per scrape over ``scrapes`` back-to-back GETs, and the body's size."""
    size = 0
    with httpx.Client(timeout=5) as client:
        client.get(url).raise_for_status()  # warm: the first scrape builds what it caches
        before = procs.cpu_seconds(pid)
        for _ in range(scrapes):
            reply = client.get(url)
            reply.raise_for_status()
            size = len(reply.content)
        used = procs.cpu_seconds(pid) - before
    return used * 1000 / scrapes, size


def measure_metrics(step: Callable[[float], Step], pid: int, url: str, rate: float,
                    pairs: int, interval_s: float = 1.0, limit_s: float = 120.0,
                    scrapes: int = 50) -> MetricsCost:
    """``pairs`` times (a step not scraped, a step scraped every ``interval_s``) at ``rate``."""
    cost = MetricsCost(rate, interval_s)
    cost.scrape_cpu_ms, cost.scrape_bytes = scrape_cost(pid, url, scrapes)
    for _ in range(pairs):
        cost.plain.append(step(rate))
        with Scraper(url, interval_s, limit_s) as scraper:
            cost.scraped.append(step(rate))
        cost.scrapes += scraper.count
    return cost
