"""Helpers around the ``sipp`` binary (SIPp 3.6.1, Debian ``sip-tester``).

Scenarios live in ``scenarios/``; pass a file name such as ``"uac_call.xml"`` (or a path).
Every run is loopback-only (``-i 127.0.0.1``), UDP, one call (``-m 1``), stdin disabled, and
bounded by ``-timeout``/``-timeout_error`` so a stuck sipp exits by itself with an error.
The harness still kills it on ``stop()``/context exit.

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

import itertools
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from . import processes
from .ports import HOST
from .processes import Proc
from .wait import wait_until

SIPP = "sipp"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"

_SEPARATOR = "-" * 47
_runs = itertools.count(1)
_STATUS_RE = re.compile(r"^SIP/2\.0 (\d{3})\b")
_REQUEST_RE = re.compile(r"^([A-Z]+) \S+ SIP/2\.0")
_CSEQ_RE = re.compile(r"^CSeq\s*:\s*\d+\s+([A-Za-z]+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class SipMessage:
    """One message from a sipp ``-trace_msg`` log."""

    direction: str  # "sent" or "received"
    text: str
    unexpected: bool = False

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        """Status code for a response, ``None`` for a request."""
        match = _STATUS_RE.match(self.first_line)
        return int(match.group(1)) if match else None

    @property
    def method(self) -> str | None:
        """Method for a request, ``None`` for a response."""
        match = _REQUEST_RE.match(self.first_line)
        return match.group(1) if match else None

    @property
    def cseq_method(self) -> str | None:
        match = _CSEQ_RE.search(self.text)
        return match.group(1).upper() if match else None

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or ``None``."""
        pattern = re.compile(rf"^{re.escape(name)}\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
        match = pattern.search(self.text)
        return match.group(1).strip() if match else None

    def is_kind(self, method_or_code: str | int) -> bool:
        """True for a request of that method (``"INVITE"``) or a response with that code
        (``486`` / ``"486"``) or class (``"4xx"``)."""
        kind = str(method_or_code).strip()
        status = self.status
        if status is not None:
            if re.fullmatch(r"\d{3}", kind):
                return status == int(kind)
            if re.fullmatch(r"\dxx", kind, re.IGNORECASE):
                return status // 100 == int(kind[0])
            return False
        return self.method == kind.upper()


def parse_message_log(text: str) -> list[SipMessage]:
    """Split a sipp 3.6 ``-trace_msg`` log into messages.

    Entries look like ``-----...----- <timestamp>`` then ``UDP message sent (N bytes):`` or
    ``UDP message received [N] bytes :`` or ``Unexpected UDP message received:``, a blank line
    and the SIP message.
    """
    messages: list[SipMessage] = []
    for block in text.split(_SEPARATOR):
        lines = block.split("\n")
        if len(lines) < 3:
            continue
        title = lines[1].strip().lower()
        if "message sent" in title:
            direction = "sent"
        elif "message received" in title:
            direction = "received"
        else:  # "Ignoring final ... message" and other notes
            continue
        body = "\n".join(lines[2:]).strip("\n").replace("\r", "")
        if body:
            messages.append(SipMessage(direction, body, unexpected="unexpected" in title))
    return messages


def _scenario_path(scenario: str | Path) -> Path:
    path = Path(scenario)
    if not path.is_absolute() and not path.exists():
        path = SCENARIOS / path
    if path.suffix != ".xml":
        path = path.with_suffix(".xml")
    if not path.is_file():
        raise FileNotFoundError(f"sipp scenario not found: {path}")
    return path


class SippProcess:
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
        self.scenario = _scenario_path(scenario)
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
            SIPP,
            "-sf", str(self.scenario),
            "-i", HOST,
            "-mi", HOST,
            "-p", str(local_port),
            "-t", "u1",
            "-m", "1",
            "-nostdin",
            "-aa",
            "-timeout", f"{max(1, round(timeout))}s",
            "-timeout_error",
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

    def __enter__(self) -> SippProcess:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- logs ------------------------------------------------------------------------------

    def messages(self) -> str:
        """Content of the ``-trace_msg`` file ('' if sipp has not written it yet)."""
        try:
            return self.message_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def errors(self) -> str:
        """Content of the ``-trace_err`` file ('' if there were no errors)."""
        try:
            return self.error_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def parsed(self) -> list[SipMessage]:
        return parse_message_log(self.messages())

    def received(self, method_or_code: str | int) -> list[str]:
        """Texts of received messages of that kind: a method (``"BYE"``), a status code
        (``486``/``"486"``) or a class (``"4xx"``). Unexpected messages are included."""
        return [
            m.text for m in self.parsed() if m.direction == "received" and m.is_kind(method_or_code)
        ]

    def wait_received(
        self, method_or_code: str | int, timeout: float = 10, count: int = 1
    ) -> list[str]:
        """Wait until at least ``count`` messages of that kind were received; return them."""

        def enough() -> list[str] | None:
            found = self.received(method_or_code)
            return found if len(found) >= count else None

        return wait_until(
            enough,
            timeout,
            message=f"sipp {self.scenario.name}: fewer than {count} {method_or_code} received "
            f"in {timeout}s\n{self.diagnostics()}",
        )

    def sent(self, method_or_code: str | int) -> list[str]:
        """Texts of sent messages of that kind (same matching as ``received``)."""
        return [
            m.text for m in self.parsed() if m.direction == "sent" and m.is_kind(method_or_code)
        ]

    def final_code(self, method: str = "INVITE") -> int | None:
        """Status of the last final (>= 200) response received for ``method``, or ``None``.

        For uac_expect_fail.xml this is the refusal code (a 401/407 that was answered with
        credentials is followed by a later final response, so it is not the last)."""
        codes = [
            m.status
            for m in self.parsed()
            if m.direction == "received"
            and m.status is not None
            and m.status >= 200
            and m.cseq_method == method.upper()
        ]
        return codes[-1] if codes else None

    def diagnostics(self) -> str:
        """End of the screen output and the error log, for assertion messages."""
        try:
            screen = self.stdout_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            screen = ""
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
    ) as proc:
        return proc.wait(timeout + 5)
