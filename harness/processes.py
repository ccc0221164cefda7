"""Child processes of the harness, and what /proc says about a process's children.

Every process the harness starts (phones, servers, the benchmark's receiver and py-spy) goes
through :func:`start`: it runs in a new session, so in its own process group, with stdin
closed and its output appended to a log file. :meth:`Proc.stop` sends SIGTERM to the group,
waits, then SIGKILL. Running processes are remembered until stopped, so that
:func:`stop_all` (the benchmark calls it on every way out) stops whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

_lock = threading.Lock()
_live: list[Proc] = []


@dataclass(eq=False)
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def poll(self) -> int | None:
        return self.popen.poll()

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process alone (its children are its own business)."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(sig)

    def exited(self, timeout: float) -> int | None:
        """The exit code once it exits within ``timeout`` s; ``None`` if still running."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait(self, timeout: float) -> int:
        """Exit code; a process still running after ``timeout`` s is stopped (code < 0)."""
        code = self.exited(timeout)
        return self.stop() if code is None else code

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> int:
        """Signal the process group, wait ``grace`` s, then SIGKILL it; return the exit code
        (negative: the signal that ended it). Does nothing to a process that has exited."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, sig)
            if self.exited(grace) is None:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        with _lock:
            if self in _live:
                _live.remove(self)
        return self.popen.returncode


class ChildProcess(ABC):
    """A phone or other program the harness runs, as a context manager: started on entry
    (unless it already is), stopped on exit, always."""

    _proc: Proc | None

    @abstractmethod
    def start(self) -> object:
        """Start the process."""

    @abstractmethod
    def stop(self) -> object:
        """Stop it if it runs (idempotent)."""

    def __enter__(self) -> Self:
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


def read_log(path: Path) -> str:
    """A log file's text so far ('' if nothing has written it yet)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def start(name: str, args: Sequence[str], log: Path, *, cwd: Path | None = None,
          env: Mapping[str, str] | None = None) -> Proc:
    """Start ``args`` in a new session with its output appended to ``log``; ``env`` is added
    to this process's environment."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(args), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True,
        )
    proc = Proc(name, popen, log)
    with _lock:
        _live[:] = [p for p in _live if p.popen.poll() is None]  # forget those that ended
        _live.append(proc)
    return proc


def live() -> list[Proc]:
    """The processes started and not stopped yet that are still running."""
    with _lock:
        return [p for p in _live if p.popen.poll() is None]


def stop_all(grace: float = 5.0) -> None:
    """Stop every process still remembered, the last started first."""
    with _lock:
        remembered = list(reversed(_live))
    for proc in remembered:
        proc.stop(grace=grace)


# --- /proc ------------------------------------------------------------------------------


def stat_fields(path: Path) -> list[str]:
    """A /proc stat file after the command name: state, parent, ..., utime at [11]."""
    return path.read_text().rsplit(")", 1)[1].split()


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name; None once the process is gone."""
    try:
        return stat_fields(Path(f"/proc/{pid}/stat"))
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has exited)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def children(pid: int) -> list[int]:
    """Running processes whose parent is ``pid`` (hookswitch's events worker, for one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z" and stat[1] == str(pid):
                found.append(int(entry.name))
    return found
