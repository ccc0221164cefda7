"""Memory per held call: a fresh hookswitch, a short warm-up, then ``calls`` trunk calls
that are answered and kept up; the server's RSS growth is read from /proc while every one
of them is established."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import sipp
from harness.ports import free_udp_port

from . import procs
from .callrate import wait_idle
from .systems import CALLEE, CALLEE_NUMBER, PASSWORDS, Hookswitch

TRUNK_CALLER = "+3228992675"


@dataclass(frozen=True)
class MemoryResult:
    calls: int  # calls asked for
    held: int  # calls established at the time of the reading
    rss_before_mb: float
    rss_after_mb: float
    fill_rate: float
    failed: int
    stop_code: int  # exit code of the server after SIGTERM (negative: killed)

    @property
    def mb_per_1k(self) -> float | None:
        if not self.held:
            return None
        return (self.rss_after_mb - self.rss_before_mb) / (self.held / 1000)


def run(workdir: Path, webhook: str | None, *, calls: int, fill_rate: float,
        stop_grace_s: float = 30.0, say: Callable[[str], None] = print) -> MemoryResult:
    began = time.monotonic()

    def note(text: str) -> None:
        say(f"  [{time.monotonic() - began:5.1f} s] {text}")

    trunk_port, phone_port = free_udp_port(), free_udp_port()
    server = Hookswitch(workdir / "server", trunk_port, webhook, stop_grace=stop_grace_s)
    server.start()
    phone = uac = None
    try:
        sipp.register(workdir, phone_port, server.sip, CALLEE, PASSWORDS[CALLEE])
        fill_s = calls / fill_rate
        phone = sipp.start_uas(workdir, phone_port, lifetime_s=fill_s * 3 + 120)
        keys = {"caller": TRUNK_CALLER}
        warm = sipp.Uac(workdir, "memory-warmup", "uac_trunk_call.xml", trunk_port, server.sip,
                        CALLEE_NUMBER, rate=min(fill_rate, 50), calls=100, hold_ms=200,
                        limit=500, keys=keys).finish()
        if not warm.clean:
            raise RuntimeError(f"memory warm-up failed: {warm}")
        wait_idle(server.pid)
        before = procs.rss_mb(server.pid)
        note(f"warmed up, RSS {before:.1f} MB; setting up {calls} calls")
        uac = sipp.Uac(workdir, "memory-hold", "uac_trunk_call.xml", trunk_port, server.sip,
                       CALLEE_NUMBER, rate=fill_rate, calls=calls,
                       hold_ms=int((fill_s * 2 + 60) * 1000), limit=calls + 100, keys=keys)
        deadline = time.monotonic() + fill_s * 2 + 20
        while uac.established() < calls and time.monotonic() < deadline:
            if uac.proc.poll() is not None:
                break
            time.sleep(0.25)
        note(f"{uac.established()} calls established; waiting for the server to go idle")
        wait_idle(server.pid, timeout=30)  # the leg records of the last calls are written
        held = uac.established()
        after = procs.rss_mb(server.pid)
        failed = sipp.read_counts(uac.stat_file).failed
        note(f"RSS {after:.1f} MB with {held} calls up")
    finally:
        if uac is not None:
            uac.abort()
        code = server.stop()
        note(f"server stopped (exit {code})")
        if phone is not None:
            phone.stop()
    return MemoryResult(calls, held, before, after, fill_rate, failed, code)
