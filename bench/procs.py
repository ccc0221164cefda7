"""What /proc says about the benchmark's processes: CPU time, resident memory, the machine's
load. The processes themselves are started and stopped by ``harness.processes``."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness import processes
from harness.processes import children, stat_fields

__all__ = ["TICKS", "CpuSnapshot", "children", "cpu_seconds", "cpu_snapshot", "loadavg",
           "rss_mb", "stat_fields"]

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str]:
    return stat_fields(Path(f"/proc/{pid}/stat"))


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
    for proc in processes.live():
        with contextlib.suppress(OSError, ValueError, IndexError):
            ours += cpu_seconds(proc.pid)
    return CpuSnapshot(time.monotonic(), busy, ours)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
