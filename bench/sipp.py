"""sipp runs for the benchmark: register a phone, a UAS that answers, UACs at a fixed rate.

Every run is loopback only (``-i 127.0.0.1``), UDP, with no stdin, bounded in calls
(``-m``) and in time (``-timeout`` with ``-timeout_error``); a message not received within
``-recv_timeout`` fails its call. A UAC run's counters come from its final ``-trace_stat``
line, its call-setup times (first INVITE sent to 200 received, the digest round trip
included) from ``-trace_rtt``; sipp measures them with a resolution of a few milliseconds.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import processes
from harness.ports import HOST, udp_bound
from harness.processes import Proc
from harness.wait import wait_until

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
UAS_MAX_CALLS = 10_000_000


def _base(scenario: str, port: int, timeout_s: float) -> list[str]:
    return [
        "sipp", "-sf", str(SCENARIOS / scenario), "-i", HOST, "-mi", HOST,
        "-p", str(port), "-t", "u1", "-nostdin",
        "-timeout", f"{max(1, round(timeout_s))}s", "-timeout_error",
    ]  # fmt: skip


def register(workdir: Path, port: int, registrar: tuple[str, int], extension: str,
             password: str) -> None:
    """REGISTER ``extension`` from 127.0.0.1:``port`` (digest); raise unless it got 200."""
    target = f"{registrar[0]}:{registrar[1]}"
    args = [*_base("register.xml", port, 10), "-m", "1", "-s", extension,
            "-au", extension, "-ap", password, "-key", "domain", target,
            "-key", "expires", "3600", target]
    proc = processes.start(f"sipp-register-{extension}", args, workdir / f"register_{port}.log",
                       cwd=workdir)
    code = proc.wait(20)
    if code != 0:
        raise RuntimeError(f"REGISTER of {extension} failed (sipp exit {code}), see {proc.log}")


def start_uas(workdir: Path, port: int, lifetime_s: float) -> Proc:
    """A phone on 127.0.0.1:``port`` answering every INVITE (180, 200) until BYE."""
    args = [*_base("uas_answer.xml", port, lifetime_s), "-aa", "-m", str(UAS_MAX_CALLS)]
    proc = processes.start(f"sipp-uas-{port}", args, workdir / f"uas_{port}.log", cwd=workdir)

    def bound() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"sipp UAS on {port} exited at once, see {proc.log}")
        return udp_bound(port)

    wait_until(bound, 10, 0.02, f"sipp UAS did not bind 127.0.0.1:{port}")
    return proc


@dataclass(frozen=True)
class Counts:
    created: int
    successful: int
    failed: int
    retransmissions: int


@dataclass(frozen=True)
class LoadResult:
    """One UAC run: ``calls`` calls offered at ``rate`` per second."""

    rate: float
    calls: int
    exit_code: int
    counts: Counts
    setup_ms: list[float]
    seconds: float  # wall time of the run

    @property
    def failed(self) -> int:
        """Failed calls: sipp's count, or the calls that did not complete if more."""
        return max(self.counts.failed, self.calls - self.counts.successful)

    @property
    def clean(self) -> bool:
        return self.exit_code == 0 and self.failed == 0


class Uac:
    """A sipp UAC placing ``calls`` calls at ``rate`` per second (not more than ``limit``
    at once), each held ``hold_ms`` before its BYE."""

    def __init__(
        self, workdir: Path, name: str, scenario: str, port: int, target: tuple[str, int],
        service: str, *, rate: float, calls: int, hold_ms: int, limit: int,
        auth: tuple[str, str] | None = None, keys: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.rate = rate
        self.calls = calls
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stat_file = self.dir / "stat.csv"
        budget = calls / rate + hold_ms / 1000 + 30 if timeout_s is None else timeout_s
        self.timeout_s = budget
        where = f"{target[0]}:{target[1]}"
        args = [*_base(scenario, port, budget),
                "-r", f"{rate:g}", "-rp", "1000ms", "-m", str(calls), "-l", str(limit),
                "-recv_timeout", "5000", "-s", service,
                "-key", "domain", where, "-key", "hold_ms", str(hold_ms),
                "-trace_stat", "-stf", str(self.stat_file), "-fd", "1",
                "-trace_rtt", "-rtt_freq", "1", "-trace_err"]
        if auth is not None:
            args += ["-au", auth[0], "-ap", auth[1], "-key", "caller", auth[0]]
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        args.append(where)
        self.started = time.monotonic()
        self.proc = processes.start(f"sipp-uac-{name}", args, self.dir / "sipp.log", cwd=self.dir)

    def setup_times(self) -> list[float]:
        """Call-setup times (ms) of the calls answered so far."""
        return [
            float(row["response_time_ms"])
            for path in self.dir.glob("*_rtt.csv")
            for row in _rows(path)
            if row.get("response_time_ms")
        ]

    def established(self) -> int:
        return len(self.setup_times())

    def finish(self, extra_s: float = 10.0) -> LoadResult:
        """Wait for the run to end (stopped after its budget plus ``extra_s``)."""
        code = self.proc.wait(max(1.0, self.timeout_s + extra_s
                                  - (time.monotonic() - self.started)))
        return self._result(code)

    def abort(self) -> LoadResult:
        return self._result(self.proc.stop(grace=5))

    def _result(self, code: int) -> LoadResult:
        return LoadResult(
            rate=self.rate, calls=self.calls, exit_code=code, counts=read_counts(self.stat_file),
            setup_ms=self.setup_times(), seconds=time.monotonic() - self.started,
        )


def _rows(path: Path) -> Sequence[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def read_counts(stat_file: Path) -> Counts:
    """Cumulative counters from the last line sipp wrote to its ``-trace_stat`` file."""
    if not stat_file.exists():
        return Counts(0, 0, 0, 0)
    rows = _rows(stat_file)
    if not rows:
        return Counts(0, 0, 0, 0)
    last = rows[-1]

    def num(column: str) -> int:
        return int(float(last.get(column) or 0))

    return Counts(num("OutgoingCall(C)"), num("SuccessfulCall(C)"), num("FailedCall(C)"),
                  num("Retransmissions(C)"))
