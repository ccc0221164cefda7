"""Child processes, loopback ports and /proc readings for the benchmark.

Every process the benchmark starts goes through :func:`start`, runs in its own process
group and is remembered, so :func:`stop_all` (called on every exit path of ``bench.run``)
can stop whatever is still running: SIGTERM to the group, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

HOST = "127.0.0.1"
T = TypeVar("T")

_handed_out: set[int] = set()
_live: list[Proc] = []


def free_port(kind: socket.SocketKind = socket.SOCK_DGRAM) -> int:
    """A free port on 127.0.0.1 (UDP by default), never the same one twice in a run."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port")


def wait_until(predicate: Callable[[], T | None], timeout: float, interval: float = 0.05,
               message: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(message or f"not done within {timeout:.1f}s")
        time.sleep(interval)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int:
        """Exit code; a process still running after ``timeout`` s is stopped (code < 0)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.stop()

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> int:
        """Signal the process group, wait ``grace`` s, then SIGKILL it."""
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self in _live:
            _live.remove(self)
        return self.popen.returncode


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def start(name: str, args: Sequence[str], log: Path, *, cwd: Path | None = None,
          env: Mapping[str, str] | None = None) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(args), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True,
        )
    proc = Proc(name, popen, log)
    _live.append(proc)
    return proc


def stop_all() -> None:
    for proc in list(reversed(_live)):
        proc.stop(grace=5.0)


def live() -> list[str]:
    return [f"{p.name}[{p.pid}]" for p in _live if p.poll() is None]


# --- /proc ------------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(path: Path) -> list[str]:
    """A /proc stat file after the command name: state, parent, ..., utime at [11]."""
    return path.read_text().rsplit(")", 1)[1].split()


def _stat(pid: int | str) -> list[str]:
    return stat_fields(Path(f"/proc/{pid}/stat"))


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (hookswitch's events worker, for one)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) and of its running child
    processes, so far: a server's helper processes are part of its cost."""
    fields = _stat(pid)
    own = (int(fields[11]) + int(fields[12])) / TICKS
    for child in children(pid):
        with contextlib.suppress(OSError, IndexError):
            own += cpu_seconds(child)
    return own


def rss_mb(pid: int) -> float:
    """Resident memory of a process and of its running child processes."""
    total = sum(rss_mb(child) for child in children(pid))
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return total + int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide busy CPU and the part of it that is this benchmark's, in seconds."""

    at: float
    busy: float
    ours: float

    def foreign_cores(self, later: CpuSnapshot) -> float:
        """Average cores that other processes kept busy between the two snapshots."""
        wall = later.at - self.at
        if wall <= 0:
            return 0.0
        return max(0.0, (later.busy - self.busy) - (later.ours - self.ours)) / wall


def cpu_snapshot() -> CpuSnapshot:
    """Our CPU is the benchmark process, its reaped children (cutime/cstime) and every
    child still running (the servers, sipp, the receiver, py-spy)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    busy = (user + nice + system + irq + softirq + steal) / TICKS
    me = _stat("self")
    ours = sum(int(me[i]) for i in (11, 12, 13, 14)) / TICKS
    for proc in list(_live):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ours += cpu_seconds(proc.pid)
    return CpuSnapshot(time.monotonic(), busy, ours)


def udp_bound(port: int) -> bool:
    """True when a UDP socket on this machine is bound to ``port`` (/proc/net/udp)."""
    wanted = f":{port:04X}"
    lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(line.split()[1].endswith(wanted) for line in lines)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
