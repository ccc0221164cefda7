"""hookswitch against bare sippy, in one run (``make bench`` / ``make bench-quick``).

    python -m bench.run [--quick] [--profile] [--results DIR]

1. hookswitch (SQLite, leg state, a webhook to the bench receiver) and one sipp phone
   registered as 200. Call-rate search: a sipp caller on the trunk address calls 200's
   number; answered, held briefly, BYE. Then the same search for 210 → 200 with digest
   auth, then click-to-dial at a steady 20 requests/s.
2. bare sippy's b2bua_simple between the same sipp caller port and the same sipp phone
   process: the same search.
3. A fresh hookswitch holding thousands of established calls: RSS growth per call.

Everything runs on 127.0.0.1 and every process started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from . import c2d, memory, procs, profile, report, sipp
from .callrate import Caller, Step, StepSettings, Target, best, run_step, search, wait_idle
from .systems import (
    CALLEE,
    CALLEE_NUMBER,
    CALLER,
    PASSWORDS,
    BareSippy,
    Hookswitch,
    Receiver,
)

ROOT = Path(__file__).resolve().parent.parent
TRUNK_CALLER = memory.TRUNK_CALLER


@dataclass(frozen=True)
class Plan:
    name: str
    steps: StepSettings
    auth_steps: StepSettings
    start_cps: float  # hookswitch trunk search
    auth_start_cps: float
    sippy_start_cps: float
    c2d_requests: int
    memory_calls: int
    budget_s: float  # an upper bound for the whole run (sipp phone lifetime)


FULL = Plan("full", StepSettings(seconds=10, drain_s=15, max_steps=10),
            StepSettings(seconds=10, drain_s=15, max_steps=9),
            start_cps=40, auth_start_cps=30, sippy_start_cps=100,
            c2d_requests=600, memory_calls=3000, budget_s=1500)
QUICK = Plan("quick", StepSettings(seconds=3, drain_s=6, max_steps=6, resolution=10),
             StepSettings(seconds=3, drain_s=6, max_steps=5, resolution=10),
             start_cps=40, auth_start_cps=30, sippy_start_cps=100,
             c2d_requests=200, memory_calls=2000, budget_s=400)


def say(text: str) -> None:
    print(text, flush=True)


def show(step: Step) -> None:
    load = step.load
    events = f" events {len(step.events)}/{step.events_expected}" if step.events_expected else ""
    say(f"  {step.system:16} {step.rate:6.0f} cps  {load.calls:5} calls  failed "
        f"{load.failed:4}  retrans {load.counts.retransmissions:4}  setup p50/p99 "
        f"{step.setup_ms(50)}/{step.setup_ms(99)} ms  cpu/call "
        f"{step.cpu_ms_per_call or 0:.2f} ms{events}  {'clean' if step.passed else 'FAILED'}")


def machine() -> dict[str, str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                  if line.startswith("Model name")), platform.processor())
    sipp_version = subprocess.run(["sipp", "-v"], capture_output=True, text=True,
                                  check=False).stdout.strip().splitlines()
    return {
        "cpus": str(os.cpu_count()), "cpu": model, "kernel": platform.release(),
        "python": platform.python_version(),
        "sipp": sipp_version[0].strip() if sipp_version else "?",
        "loadavg at start": procs.loadavg(),
    }


def run_search(workdir: Path, target: Target, caller: Caller, settings: StepSettings,
               start: float, label: str) -> list[Step]:
    counter = iter(range(1, 1000))

    def step(rate: float) -> Step:
        wait_idle(target.pid)
        return run_step(workdir, target, caller, rate, settings, f"{label}-{next(counter)}")

    return search(step, start, settings, show)


def profile_knee(workdir: Path, out: Path, target: Target, caller: Caller, rate: float,
                 seconds: int) -> None:
    """Run a step at ``rate`` under py-spy: raw stacks of the GIL holder, and an SVG."""
    for fmt, gil, name in (("raw", True, "profile.txt"), ("flamegraph", False, "profile.svg")):
        settings = StepSettings(seconds=seconds + 4, drain_s=10)
        wait_idle(target.pid)
        spy = profile.record(target.pid, out / name, seconds, fmt=fmt, gil=gil)
        step = run_step(workdir, target, caller, rate, settings, f"profile-{fmt}")
        show(step)
        spy.wait(30)
    spots = profile.hot_spots(out / "profile.txt")
    text = profile.render(spots)
    (out / "hotspots.txt").write_text(text)
    say(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter steps (< 2 min)")
    parser.add_argument("--profile", action="store_true",
                        help="also run py-spy at the knee (writes profile.svg, hotspots.txt)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    began = time.monotonic()
    command = shlex.join([".venv/bin/python", "-m", "bench.run", *sys.argv[1:]])
    if os.environ.get("MAKELEVEL"):
        command = "make bench-quick" if args.quick else "make bench"
    results = report.Results(plan.name, command,
                             datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                             machine())
    out = args.results
    work = out / f"work-{plan.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        execute(plan, work, out, results, profile_knee_too=args.profile)
    finally:
        procs.stop_all()
    results.wall_s = time.monotonic() - began
    results.machine["loadavg at end"] = procs.loadavg()
    say("")
    say(report.write(results, out))
    say(f"results: {out / 'table.md'}, {out / 'results.json'}, {out / 'plot.png'}")
    say(f"wall time {results.wall_s:.0f} s")
    say(report.summary_line(results))
    return 0


def execute(plan: Plan, work: Path, out: Path, results: report.Results,
            profile_knee_too: bool) -> None:
    receiver = Receiver(work)
    receiver.start()
    trunk_port, auth_port, phone_port = procs.free_port(), procs.free_port(), procs.free_port()
    trunk = Caller("uac_trunk_call.xml", trunk_port, CALLEE_NUMBER,
                   keys={"caller": TRUNK_CALLER})
    auth = Caller("uac_auth_call.xml", auth_port, CALLEE, auth=(CALLER, PASSWORDS[CALLER]))

    say(f"== hookswitch ({plan.name}): call-rate search, trunk → registered sipp phone")
    server = Hookswitch(work / "hookswitch", trunk_port, receiver.url)
    server.start()
    sipp.register(work, phone_port, server.sip, CALLEE, PASSWORDS[CALLEE])
    phone = sipp.start_uas(work, phone_port, plan.budget_s)
    hs = Target("hookswitch", server.pid, server.sip, 3, receiver.events)
    results.trunk = run_search(work, hs, trunk, plan.steps, plan.start_cps, "hookswitch")

    say("== hookswitch: call-rate search, 210 → 200 with digest auth")
    hs_auth = Target("hookswitch-auth", server.pid, server.sip, 6, receiver.events)
    results.auth = run_search(work, hs_auth, auth, plan.auth_steps, plan.auth_start_cps,
                              "auth")

    say(f"== hookswitch: click-to-dial, {plan.c2d_requests} requests at 20/s")
    wait_idle(server.pid)
    results.c2d = c2d.run(work, server, requests=plan.c2d_requests, rate=20.0)
    say(f"  p50 {results.c2d.pct(50)} ms  p99 {results.c2d.pct(99)} ms  "
        f"accepted {results.c2d.accepted}/{results.c2d.requests}")

    knee = best(results.trunk)
    if profile_knee_too and knee is not None:
        say(f"== hookswitch: py-spy at the knee ({knee.rate:.0f} cps)")
        profile_knee(work, out, hs, trunk, knee.rate, 20)
    server.stop()

    say("== bare sippy b2bua_simple: call-rate search, same sipp caller and phone")
    bare = BareSippy(work / "sippy", ("127.0.0.1", phone_port))
    bare.start()
    sp = Target("sippy", bare.pid, bare.sip)
    results.sippy = run_search(work, sp, trunk, plan.steps, plan.sippy_start_cps, "sippy")
    bare.stop()
    phone.stop()

    fill = max(20.0, min(200.0, 0.8 * (knee.rate if knee else 50.0)))
    say(f"== hookswitch: memory, {plan.memory_calls} established calls (set up at "
        f"{fill:.0f} cps)")
    results.memory = memory.run(work / "memory", receiver.url, calls=plan.memory_calls,
                                fill_rate=fill)
    mem = results.memory
    say(f"  held {mem.held}  RSS {mem.rss_before_mb:.1f} → {mem.rss_after_mb:.1f} MB  "
        f"= {mem.mb_per_1k or 0:.1f} MB per 1,000 calls")
    receiver.stop()
    if not procs.live():
        return
    results.notes.append(f"processes still running at the end: {procs.live()}")


if __name__ == "__main__":
    raise SystemExit(main())
