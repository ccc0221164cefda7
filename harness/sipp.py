"""Helpers around the ``sipp`` binary (SIPp 3.6.1, Debian ``sip-tester``), for the tests
and the benchmark.

Scenarios live in ``scenarios/``; pass a file name such as ``"uac_call.xml"`` (or a path).
Every run (:func:`sipp_command`) is loopback-only (``-i 127.0.0.1``), UDP, stdin disabled,
and bounded by ``-timeout``/``-timeout_error`` so a stuck sipp exits by itself with an
error; it is started by ``processes.start`` and killed on ``stop()``/context exit.

For tests: :class:`SippProcess`, one call (``-m 1``) with its messages traced, and
:func:`sipp_register`. For the benchmark: :func:`register`, :func:`start_uas` (a phone that
answers every call) and :class:`Uac` (calls at a fixed rate, not more than a limit at once),
bounded in calls (``-m``); a message not received within ``-recv_timeout`` fails its call.
A UAC run's counters come from its final ``-trace_stat`` line, its call-setup times (first
INVITE sent to 200 received, the digest round trip included) from ``-trace_rtt``; sipp
measures them with a resolution of a few milliseconds.

Text in scenarios is filled in with ``-key name value`` (``[name]`` in the XML); pauses read
a key too (``assignstr`` + ``todouble`` into a call variable, since ``-set`` globals are
strings and ``<pause variable>`` reads them as 0). Defaults for every key a scenario uses
are always passed, so scenarios never fail with "unsupported keyword":

=====================  ======================================================================
key                    meaning (default)
=====================  ======================================================================
``caller``             From user of UAC scenarios (the ``-au`` user, else ``"sipp"``)
``domain``             host[:port] in Request-URI/From/To (``"HOST:PORT"`` of ``remote``)
``expires``            Expires of register.xml (``"3600"``)
``user``/``password``  credentials uas_registrar.xml accepts (``"sipp"``/``"password"``)
``hold_ms``            how long uac_call/uac_noauth_call stay in the call (``"1000"``)
``hangup_after_ms``    how long uas_answer_then_bye waits before its BYE (``"1000"``)
=====================  ======================================================================

sipp exit codes: 0 every call succeeded, 1 at least one call failed (unexpected message,
retransmission timeout...), 97 stopped by command, 99 no call processed, 255 fatal
(including ``-timeout_error``), 254 could not bind. ``stop()`` returns negative signal codes.
"""

from __future__ import annotations

import csv
import itertools
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import processes
from .ports import HOST, udp_bound
from .processes import ChildProcess, Proc, read_log
from .siplog import MessageLog, SipMessage, parse_sipp_log
from .wait import wait_until

SIPP = "sipp"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"

_runs = itertools.count(1)


def scenario_path(scenario: str | Path) -> Path:
    path = Path(scenario)
    if not path.is_absolute() and not path.exists():
        path = SCENARIOS / path
    if path.suffix != ".xml":
        path = path.with_suffix(".xml")
    if not path.is_file():
        raise FileNotFoundError(f"sipp scenario not found: {path}")
    return path


def sipp_command(scenario: str | Path, local_port: int, timeout: float) -> list[str]:
    """The start of every sipp command line: the scenario, 127.0.0.1:``local_port`` over UDP,
    no stdin, and an error exit (255) after ``timeout`` seconds."""
    return [
        SIPP, "-sf", str(scenario_path(scenario)), "-i", HOST, "-mi", HOST,
        "-p", str(local_port), "-t", "u1", "-nostdin",
        "-timeout", f"{max(1, round(timeout))}s", "-timeout_error",
    ]  # fmt: skip


class SippProcess(ChildProcess, MessageLog):
    """One sipp run in the background, as a context manager.

    ``SippProcess("uas_answer.xml", local_port=p, remote=None, workdir=tmp)`` starts a UAS on
    127.0.0.1:p; ``SippProcess("uac_call.xml", local_port=p, remote=("127.0.0.1", 5060),
    service="200", auth=("201", "pw"), workdir=tmp)`` starts a UAC calling 200.

    Files in ``workdir`` (names start with ``<scenario>_<local_port>_<n>``): ``_messages.log``
    (``-trace_msg``), ``_errors.log`` (``-trace_err``), ``_stdout.log`` (sipp's screen).
    """

    def __init__(
        self,
        scenario: str | Path,
        *,
        local_port: int,
        remote: tuple[str, int] | None,
        service: str | None = None,
        extra_args: Sequence[str] = (),
        workdir: Path,
        auth: tuple[str, str] | None = None,
        keys: Mapping[str, str | int] | None = None,
        timeout: float = 30.0,
        start: bool = True,
    ) -> None:
        self.scenario = scenario_path(scenario)
        self.name = f"sipp {self.scenario.name}"
        self.local_port = local_port
        self.remote = remote
        self.service = service
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        stem = f"{self.scenario.stem}_{local_port}_{next(_runs)}"
        self.message_file = self.workdir / f"{stem}_messages.log"
        self.error_file = self.workdir / f"{stem}_errors.log"
        self.stdout_file = self.workdir / f"{stem}_stdout.log"

        all_keys: dict[str, str | int] = {
            "caller": auth[0] if auth else "sipp",
            "domain": f"{remote[0]}:{remote[1]}" if remote else HOST,
            "expires": "3600",
            "user": "sipp",
            "password": "password",
            "hold_ms": 1000,
            "hangup_after_ms": 1000,
        }
        all_keys.update(keys or {})

        args = [
            *sipp_command(self.scenario, local_port, timeout),
            "-m", "1",
            "-aa",
            "-trace_msg", "-message_file", str(self.message_file),
            "-trace_err", "-error_file", str(self.error_file),
        ]  # fmt: skip
        if service is not None:
            args += ["-s", service]
        if auth is not None:
            args += ["-au", auth[0], "-ap", auth[1]]
        for name, value in all_keys.items():
            args += ["-key", name, str(value)]
        args += list(extra_args)
        if remote is not None:
            args.append(f"{remote[0]}:{remote[1]}")
        self.args = args
        self._proc: Proc | None = None
        self.returncode: int | None = None
        if start:
            self.start()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("sipp already started")
        for path in (self.message_file, self.error_file):
            path.unlink(missing_ok=True)
        self._proc = processes.start(f"sipp-{self.scenario.stem}-{self.local_port}", self.args,
                                     self.stdout_file, cwd=self.workdir)

    @property
    def pid(self) -> int:
        assert self._proc is not None, "sipp not started"
        return self._proc.pid

    def poll(self) -> int | None:
        """Exit code if sipp has finished, else ``None``."""
        if self._proc is None:
            return self.returncode
        code = self._proc.poll()
        if code is not None:
            self.returncode = code
        return code

    def wait(self, timeout: float | None = None) -> int:
        """Wait for sipp to finish; return its exit code (0 = the call succeeded).

        Raises ``AssertionError`` (with the end of the logs) if it is still running after
        ``timeout`` seconds (default: the sipp ``-timeout`` plus 5 s).
        """
        limit = self.timeout + 5 if timeout is None else timeout
        wait_until(
            lambda: self.poll() is not None,
            limit,
            message=f"sipp {self.scenario.name} still running after {limit}s\n"
            + self.diagnostics(),
        )
        code = self.poll()
        assert code is not None
        return code

    def stop(self) -> int:
        """Kill sipp if it is still running (SIGTERM, then SIGKILL); return the exit code."""
        proc = self._proc
        if proc is None:
            return self.returncode if self.returncode is not None else 0
        self.returncode = proc.stop(grace=2.0)
        return self.returncode

    # -- logs ------------------------------------------------------------------------------

    def messages(self) -> str:
        """Content of the ``-trace_msg`` file ('' if sipp has not written it yet)."""
        return read_log(self.message_file)

    def errors(self) -> str:
        """Content of the ``-trace_err`` file ('' if there were no errors)."""
        return read_log(self.error_file)

    def sip_messages(self) -> list[SipMessage]:
        return parse_sipp_log(self.messages())

    def final_code(self, method: str = "INVITE") -> int | None:
        """Status of the last final (>= 200) response received for ``method``, or ``None``.

        For uac_expect_fail.xml this is the refusal code (a 401/407 that was answered with
        credentials is followed by a later final response, so it is not the last)."""
        codes = [
            m.status
            for m in self.sip_messages()
            if m.direction == "received"
            and m.status is not None
            and m.status >= 200
            and m.cseq_method == method.upper()
        ]
        return codes[-1] if codes else None

    def diagnostics(self) -> str:
        """End of the screen output and the error log, for assertion messages."""
        screen = read_log(self.stdout_file)
        return (
            f"command: {' '.join(self.args)}\n"
            f"--- sipp errors ({self.error_file}) ---\n{self.errors()[-3000:]}\n"
            f"--- sipp screen (tail) ---\n{screen[-1500:]}"
        )


def sipp_register(
    server: tuple[str, int],
    user: str,
    password: str,
    local_port: int,
    expires: int = 3600,
    timeout: float = 10,
    *,
    workdir: Path | None = None,
    domain: str | None = None,
    scenario: str = "register.xml",
    extra_args: Sequence[str] = (),
) -> int:
    """REGISTER ``user`` at ``server`` from 127.0.0.1:``local_port`` with digest auth.

    Returns sipp's exit code: 0 once a 200 OK arrived; non-zero otherwise (1 quickly for a
    401 after the authenticated retry, a 403 or any other unexpected answer; 255 if nothing
    came back before ``timeout``). ``expires=0`` uses unregister.xml. ``domain`` defaults to
    ``"HOST:PORT"`` of the server. Logs go to ``workdir`` (default: a fresh temp dir).
    """
    if expires == 0 and scenario == "register.xml":
        scenario = "unregister.xml"
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="sipp-register-"))
    keys: dict[str, str | int] = {"expires": expires}
    if domain is not None:
        keys["domain"] = domain
    with SippProcess(
        scenario,
        local_port=local_port,
        remote=server,
        service=user,
        auth=(user, password),
        keys=keys,
        workdir=workdir,
        timeout=timeout,
        extra_args=list(extra_args),
    ) as proc:
        return proc.wait(timeout + 5)


# --- the benchmark: a registered phone answering every call, callers at a fixed rate ------

UAS_MAX_CALLS = 10_000_000


def register(workdir: Path, port: int, registrar: tuple[str, int], extension: str,
             password: str) -> None:
    """REGISTER ``extension`` from 127.0.0.1:``port`` (digest); raise unless it got 200."""
    code = sipp_register(registrar, extension, password, port, workdir=workdir)
    if code != 0:
        raise RuntimeError(f"REGISTER of {extension} failed (sipp exit {code}), see {workdir}")


def start_uas(workdir: Path, port: int, lifetime_s: float) -> Proc:
    """A phone on 127.0.0.1:``port`` answering every INVITE (180, 200) until BYE."""
    args = [*sipp_command("uas_answer.xml", port, lifetime_s), "-aa", "-m", str(UAS_MAX_CALLS)]
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
        args = [*sipp_command(scenario, port, budget),
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
