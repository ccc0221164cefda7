"""Call-rate search: offer calls at a fixed rate for a few seconds, count failures, step the
rate up until a step fails, then bisect between the last clean and the first failed rate.

A step is clean (the same rule for every system) when sipp saw every call answered and
ended with no failure (timeouts included), the call setup p99 (INVITE → 200) stayed within
``SETUP_P99_LIMIT_MS`` and, for hookswitch, the event pipeline kept up: every call event of
those calls reached the webhook receiver (within the drain window after the last BYE) and
their p99 latency stayed under ``EVENT_P99_LIMIT_MS``. Without the latency bounds a short
step "passes" at rates where calls take seconds to set up (retransmitted INVITEs) or the
outbox only grows, which no server sustains.

The search grows the rate until a step fails, however many steps that takes, within a
safety bound (``StepSettings.max_steps``, ``max_search_s``, ``max_rate``); only then does it
bisect, for at most ``bisect_steps`` steps. A search that hit its bound before any step
failed gives a lower bound, not a sustained rate (``lower_bound``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.sipp import LoadResult, Uac

from . import procs
from .stats import percentile

EVENT_P99_LIMIT_MS = 1000.0
SETUP_P99_LIMIT_MS = 200.0


@dataclass(frozen=True)
class Event:
    """One line of the receiver's ``--latency-log``: a call event and when it arrived."""

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


@dataclass(frozen=True)
class Caller:
    """How one kind of call is placed: scenario, from which port, to whom."""

    scenario: str
    port: int
    service: str
    auth: tuple[str, str] | None = None
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A system under test, seen from the load generator."""

    name: str
    pid: int
    sip: tuple[str, int]
    events_per_call: int = 0  # call events expected at the receiver per answered call
    events_file: Path | None = None


@dataclass(frozen=True)
class StepSettings:
    seconds: float  # how long each step offers calls
    hold_ms: int = 200  # a short call: answered, held this long, BYE
    drain_s: float = 10.0  # how long events may trail the last call of a step
    idle_timeout_s: float = 30.0  # how long to wait for the server to go idle before a step
    max_steps: int = 16  # safety bound on the steps of one search
    resolution: float = 5.0  # stop bisecting when the bracket is this narrow (cps)
    growth: float = 1.5  # rate factor between steps until the first failure
    bisect_steps: int = 6  # steps after the first failure (bisection)
    max_search_s: float = 900.0  # safety bound on one search's wall time
    max_rate: float = 2000.0  # safety bound on the offered rate


@dataclass(frozen=True)
class Step:
    system: str
    load: LoadResult
    cpu_s: float
    events: list[Event]
    events_expected: int
    foreign_cores: float = 0.0  # CPU other processes on the machine used during the step

    @property
    def rate(self) -> float:
        return self.load.rate

    @property
    def events_missing(self) -> int:
        return max(0, self.events_expected - len(self.events))

    @property
    def events_kept_up(self) -> bool:
        if not self.events_expected:
            return True
        p99 = self.event_ms(99)
        return self.events_missing == 0 and p99 is not None and p99 <= EVENT_P99_LIMIT_MS

    @property
    def setup_kept_up(self) -> bool:
        p99 = self.setup_ms(99)
        return p99 is not None and p99 <= SETUP_P99_LIMIT_MS

    @property
    def passed(self) -> bool:
        return self.load.clean and self.setup_kept_up and self.events_kept_up

    @property
    def verdict(self) -> str:
        if not self.load.clean:
            return f"{self.load.failed} failed calls" if self.load.failed else "sipp error"
        if not self.setup_kept_up:
            return f"setup p99 > {SETUP_P99_LIMIT_MS:.0f} ms"
        if self.events_missing:
            return f"{self.events_missing} events missing"
        if not self.events_kept_up:
            return f"events p99 > {EVENT_P99_LIMIT_MS / 1000:g} s"
        return "clean"

    @property
    def cpu_ms_per_call(self) -> float | None:
        done = self.load.counts.successful
        return self.cpu_s * 1000 / done if done else None

    def setup_ms(self, pct: float) -> float | None:
        return percentile(self.load.setup_ms, pct)

    def event_ms(self, pct: float) -> float | None:
        return percentile([e.latency_ms for e in self.events], pct)


def wait_idle(pid: int, timeout: float = 30.0, busy_share: float = 0.10) -> None:
    """Wait until the process uses less than ``busy_share`` of a core over 0.5 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = procs.cpu_seconds(pid)
        time.sleep(0.5)
        if procs.cpu_seconds(pid) - before < busy_share * 0.5:
            return


def collect_events(path: Path, offset: int, expected: int, quiet_s: float,
                   limit_s: float) -> tuple[list[Event], int]:
    """Read events after ``offset`` until ``expected`` distinct ones arrived, nothing new
    came for ``quiet_s`` seconds, or ``limit_s`` passed."""
    seen: dict[str, Event] = {}
    deadline = time.monotonic() + limit_s
    last_new = time.monotonic()
    while True:
        fresh, offset = read_events(path, offset)
        for event in fresh:
            if event.uid not in seen:
                seen[event.uid] = event
                last_new = time.monotonic()
        now = time.monotonic()
        if len(seen) >= expected or now >= deadline or now - last_new >= quiet_s:
            return list(seen.values()), offset
        time.sleep(0.1)


def run_step(workdir: Path, target: Target, caller: Caller, rate: float,
             settings: StepSettings, label: str) -> Step:
    calls = max(1, round(rate * settings.seconds))
    offset = target.events_file.stat().st_size if (
        target.events_file and target.events_file.exists()) else 0
    cpu_before = procs.cpu_seconds(target.pid)
    machine_before = procs.cpu_snapshot()
    uac = Uac(workdir, label, caller.scenario, caller.port, target.sip, caller.service,
              rate=rate, calls=calls, hold_ms=settings.hold_ms,
              limit=max(50, int(rate * 8)), auth=caller.auth, keys=caller.keys)
    load = uac.finish()
    events: list[Event] = []
    expected = 0
    if target.events_file is not None and target.events_per_call:
        expected = target.events_per_call * load.counts.successful
        events, _ = collect_events(target.events_file, offset, expected,
                                   quiet_s=min(3.0, settings.drain_s),
                                   limit_s=settings.drain_s)
    cpu = procs.cpu_seconds(target.pid) - cpu_before
    foreign = machine_before.foreign_cores(procs.cpu_snapshot())
    return Step(target.name, load, cpu, events, expected, foreign)


def search(step: Callable[[float], Step], start: float, settings: StepSettings,
           report: Callable[[Step], None], min_rate: float = 1.0,
           clock: Callable[[], float] = time.monotonic) -> list[Step]:
    """Step the rate up by ``growth`` until a step fails, then bisect for at most
    ``bisect_steps`` steps. Safety bounds: ``max_steps`` steps, ``max_search_s`` seconds,
    ``max_rate``; when one of them ends the search before any step failed, the best rate is
    only a lower bound (``lower_bound``)."""
    steps: list[Step] = []
    good: float | None = None
    bad: float | None = None
    rate = start
    began = clock()
    bisected = 0
    while len(steps) < settings.max_steps and clock() - began < settings.max_search_s:
        result = step(rate)
        report(result)
        steps.append(result)
        if bad is not None:
            bisected += 1
        if result.passed:
            good = rate
        else:
            bad = rate
        if bad is None:
            if rate >= settings.max_rate:
                break
            rate = min(settings.max_rate, _round(rate * settings.growth, settings.resolution))
        elif good is None:
            rate = _round(rate / 2, 1.0)
            if rate < min_rate:
                break
        else:
            if bad - good <= settings.resolution or bisected >= settings.bisect_steps:
                break
            rate = _round((good + bad) / 2, settings.resolution)
            if rate <= good or rate >= bad:
                break
    return steps


def best(steps: list[Step]) -> Step | None:
    """The highest clean step below every failed rate (a clean step above a failed one is
    luck, not a sustained rate)."""
    failed = [s.rate for s in steps if not s.passed]
    ceiling = min(failed) if failed else float("inf")
    clean = [s for s in steps if s.passed and s.rate < ceiling]
    return max(clean, key=lambda s: s.rate) if clean else None


def unbounded(steps: list[Step]) -> bool:
    """True when no step failed: the best rate is then only a lower bound."""
    return bool(steps) and all(s.passed for s in steps)


def lower_bound(steps: list[Step]) -> bool:
    """True when the search's best rate is only a lower bound: no step above it failed
    (the search hit a safety bound first)."""
    return unbounded(steps)


def at_rate(steps: list[Step], rate: float) -> Step | None:
    """The step offered at ``rate`` (the last one, if several)."""
    found = [s for s in steps if abs(s.rate - rate) < 1e-9]
    return found[-1] if found else None


def _round(value: float, resolution: float) -> float:
    return max(resolution, round(value / resolution) * resolution)
