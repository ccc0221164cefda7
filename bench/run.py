"""hookswitch against bare sippy, in one run (``make bench`` / ``make bench-quick``).

    python -m bench.run [--quick] [--profile] [--results DIR]

1. hookswitch (SQLite, leg state, a webhook to the bench receiver) and one sipp phone
   registered as 200. Call-rate search: a sipp caller on the trunk address calls 200's
   number; answered, held briefly, BYE. Then the same search for 210 → 200 with digest
   auth. Click-to-dial at a steady 20 requests/s runs first, on the fresh server; then
   one step at each fixed rate of ``Plan.cpu_rates`` (CPU per call), and steps at 100
   calls/s without and with ``GET /metrics`` scraped once a second (bench/cpucost.py).
2. Call control on another fresh hookswitch (bench/reinvite.py): calls one after the other,
   each held, resumed and blind-transferred by the API, timed to the (re-)INVITEs.
3. bare sippy's b2bua_simple between the same sipp caller and phone ports: the same
   fixed-rate steps, then the same search. Every step starts a new phone process on
   that port, so that the calls an overloaded step left behind do not load the next one.
4. A fresh hookswitch holding thousands of established calls: RSS growth per call.

A step is clean with no failed call, setup p99 ≤ 200 ms and (hookswitch) every event
delivered with p99 ≤ 1 s, for every system; a search grows the rate until a step is not
clean, within safety bounds that make its rate a lower bound when reached first.

Everything runs on 127.0.0.1 and every process started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from harness import processes, sipp
from harness.ports import free_udp_port

from . import c2d, cpucost, memory, procs, profile, reinvite, report
from .callrate import (
    Caller,
    Step,
    StepSettings,
    Target,
    best,
    lower_bound,
    run_step,
    search,
    wait_idle,
)
from .stats import fmt
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
    trunk: StepSettings  # hookswitch, trunk → phone
    auth: StepSettings  # hookswitch, 210 → 200 with digest
    sippy: StepSettings  # bare sippy, trunk → phone
    trunk_start: float  # first rate of each search (cps)
    auth_start: float
    sippy_start: float
    c2d_requests: int  # click-to-dial requests, at C2D_RATE
    reinvite_calls: int  # calls held, resumed and transferred, one after the other
    reinvite_limit_s: float  # time limit of those calls
    memory_calls: int  # calls held for the memory reading
    memory_fill: float  # rate those calls are set up at (cps; no webhook, so no outbox lag)
    stop_grace_s: float  # SIGTERM → SIGKILL for the memory server (2,000+ calls up)
    budget_s: float  # upper bound of the whole run (lifetime of the sipp phone)
    cpu: StepSettings  # the fixed-rate steps that measure CPU per call (both systems)
    cpu_rates: tuple[float, ...] = (50.0, 100.0, 150.0)
    metrics_rate: float = 100.0  # hookswitch with and without GET /metrics scraped
    metrics_pairs: int = 1  # (not scraped, scraped) step pairs at metrics_rate


C2D_RATE = 20.0
# Every search grows the rate until a step fails (then bisects for bisect_steps steps);
# max_steps, max_search_s and max_rate are safety bounds only: a search stopped by one of
# them before any step failed reports its rate as a lower bound.
FULL = Plan(
    "full",
    trunk=StepSettings(seconds=10, drain_s=10, max_steps=16, resolution=2, bisect_steps=6,
                       max_search_s=600),
    auth=StepSettings(seconds=10, drain_s=10, max_steps=16, resolution=2, bisect_steps=5,
                      max_search_s=600),
    sippy=StepSettings(seconds=10, drain_s=0, max_steps=16, resolution=10, growth=2.0,
                       bisect_steps=5, max_search_s=600),
    trunk_start=40, auth_start=30, sippy_start=50,
    c2d_requests=600, reinvite_calls=200, reinvite_limit_s=240,
    memory_calls=3000, memory_fill=50, stop_grace_s=30,
    budget_s=2400,
    cpu=StepSettings(seconds=10, drain_s=10), metrics_pairs=2,
)
QUICK = Plan(
    "quick",
    trunk=StepSettings(seconds=3, drain_s=5, max_steps=8, resolution=5, idle_timeout_s=6,
                       bisect_steps=1, max_search_s=120),
    auth=StepSettings(seconds=3, drain_s=5, max_steps=8, resolution=5, idle_timeout_s=6,
                      bisect_steps=1, max_search_s=120),
    sippy=StepSettings(seconds=3, drain_s=0, max_steps=8, resolution=20, idle_timeout_s=6,
                       growth=2.0, bisect_steps=1, max_search_s=120),
    trunk_start=60, auth_start=40, sippy_start=100,
    c2d_requests=100, reinvite_calls=30, reinvite_limit_s=60,
    memory_calls=2000, memory_fill=60, stop_grace_s=15,
    budget_s=900,
    cpu=StepSettings(seconds=3, drain_s=5, idle_timeout_s=6), metrics_pairs=1,
)


def say(text: str) -> None:
    print(text, flush=True)


def show(step: Step) -> None:
    load = step.load
    events = (f"  events {len(step.events)}/{step.events_expected} p99 "
              f"{fmt(step.event_ms(99), 0)} ms" if step.events_expected else "")
    say(f"  {step.system:15} {step.rate:4.0f} cps {load.calls:5} calls  failed "
        f"{load.failed:3}  retrans {load.counts.retransmissions:3}  setup p50/p99 "
        f"{fmt(step.setup_ms(50), 0)}/{fmt(step.setup_ms(99), 0)} ms  CPU/call "
        f"{fmt(step.cpu_ms_per_call, 1)} ms{events}  other load {step.foreign_cores:.2f}  "
        f"{step.verdict}")


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


def stepper(workdir: Path, target: Target, caller: Caller, settings: StepSettings,
            label: str, fresh_phone: Callable[[], None]) -> Callable[[float], Step]:
    """One step at a given rate, on a new phone and an idle server, shown as it ends."""
    counter = iter(range(1, 1000))

    def step(rate: float) -> Step:
        # An overloaded step leaves the phone with dead calls still retransmitting their
        # 200s for up to 32 s; the next step (or the other system's search) would pay for
        # them. Every step starts with a new phone process on the same port.
        fresh_phone()
        wait_idle(target.pid, settings.idle_timeout_s)
        return run_step(workdir, target, caller, rate, settings, f"{label}-{next(counter)}")

    return step


def run_search(workdir: Path, target: Target, caller: Caller, settings: StepSettings,
               start: float, label: str, fresh_phone: Callable[[], None]) -> list[Step]:
    step = stepper(workdir, target, caller, settings, label, fresh_phone)
    steps = search(step, start, settings, show)
    if lower_bound(steps):
        say(f"  (no {label} step failed before the search's safety bound: its rate is a "
            "lower bound)")
    return steps


def run_fixed(workdir: Path, target: Target, caller: Caller, settings: StepSettings,
              rates: tuple[float, ...], label: str,
              fresh_phone: Callable[[], None]) -> list[Step]:
    """One step at each of ``rates``: CPU per call at the same offered rates for both."""
    step = stepper(workdir, target, caller, settings, label, fresh_phone)
    steps = []
    for rate in rates:
        steps.append(step(rate))
        show(steps[-1])
    return steps


def profile_knee(workdir: Path, out: Path, target: Target, caller: Caller, rate: float,
                 seconds: int, fresh_phone: Callable[[], None]) -> None:
    """Run a step at ``rate`` under py-spy: raw stacks of the GIL holder, and an SVG."""
    for kind, gil, name in (("raw", True, "profile.txt"), ("flamegraph", False, "profile.svg")):
        settings = StepSettings(seconds=seconds + 4, drain_s=10)
        fresh_phone()
        wait_idle(target.pid)
        spy = profile.record(target.pid, out / name, seconds, fmt=kind, gil=gil)
        show(run_step(workdir, target, caller, rate, settings, f"profile-{kind}"))
        spy.wait(30)
    text = profile.render(profile.hot_spots(out / "profile.txt"))
    (out / "hotspots.txt").write_text(text)
    say(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter steps (about 2 min)")
    parser.add_argument("--profile", action="store_true",
                        help="also run py-spy at the knee (profile.svg, hotspots.txt)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results",
                        help="results go to RESULTS/full or RESULTS/quick")
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
    args.results.mkdir(parents=True, exist_ok=True)
    lock = (args.results / ".lock").open("w")
    try:  # two runs at once would share two cores and one results folder
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say(f"another benchmark run holds {args.results / '.lock'}; not starting")
        return 2
    out = args.results / plan.name  # bench/results/full or bench/results/quick
    work = out / "work"  # every process's log, sipp's statistics, the databases
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run = Run(plan, work, out, results)
    machine_before = procs.cpu_snapshot()
    try:
        ok = run.phase("hookswitch", lambda: run.hookswitch(args.profile))
        ok &= run.phase("call control", run.call_control)
        ok &= run.phase("bare sippy", run.sippy)
        ok &= run.phase("memory", run.memory)
    finally:
        processes.stop_all()
    results.wall_s = time.monotonic() - began
    results.machine["loadavg at end"] = procs.loadavg()
    foreign = machine_before.foreign_cores(procs.cpu_snapshot())
    results.machine["CPU used by other processes during the run"] = f"{foreign:.2f} cores"
    if foreign > 0.2:
        results.notes.append(f"Other processes kept {foreign:.2f} of the {os.cpu_count()} "
                             "cores busy on average during this run: its numbers are low "
                             "and noisy; rerun on a quiet machine.")
    say("")
    say(report.write(results, out))
    say(f"results: {out / 'table.md'}, {out / 'results.json'}, {out / 'plot.png'}; "
        f"logs: {work}")
    say(f"wall time {results.wall_s:.0f} s")
    say(report.summary_line(results))
    return 0 if ok else 1


class Run:
    """The phases of one benchmark run, sharing the webhook receiver and sipp ports."""

    def __init__(self, plan: Plan, work: Path, out: Path, results: report.Results) -> None:
        self.plan, self.work, self.out, self.results = plan, work, out, results
        self.receiver = Receiver(work)
        self.trunk_port, self.phone_port = free_udp_port(), free_udp_port()
        self.trunk = Caller("uac_trunk_call.xml", self.trunk_port, CALLEE_NUMBER,
                            keys={"caller": TRUNK_CALLER})
        self.auth = Caller("uac_auth_call.xml", free_udp_port(), CALLEE,
                           auth=(CALLER, PASSWORDS[CALLER]))
        self.phone: processes.Proc | None = None  # the sipp phone (UAS) of the call-rate steps

    def fresh_phone(self) -> None:
        """A new sipp UAS on the phone's port (the registration stays: same address)."""
        if self.phone is not None:
            self.phone.stop()
        self.phone = sipp.start_uas(self.work, self.phone_port, self.plan.budget_s)

    def phase(self, name: str, body: Callable[[], None]) -> bool:
        """Run one phase; a failure is reported in the results and the run goes on."""
        try:
            body()
            return True
        except Exception as exc:  # the other phases still run, the SUMMARY still prints
            say(f"!! {name} failed: {exc}")
            self.results.notes.append(f"The {name} phase failed: {exc}")
            return False

    def hookswitch(self, with_profile: bool) -> None:
        plan, work = self.plan, self.work
        self.receiver.start()
        say(f"== hookswitch ({plan.name})")
        server = Hookswitch(work / "hookswitch", self.trunk_port, self.receiver.url)
        server.start()
        self.results.machine["hookswitch commit"] = git_head()
        try:
            sipp.register(work, self.phone_port, server.sip, CALLEE, PASSWORDS[CALLEE])
            self.fresh_phone()
            self.hookswitch_runs(server, with_profile)
        finally:
            self.stopped("hookswitch", server.stop())

    def hookswitch_runs(self, server: Hookswitch, with_profile: bool) -> None:
        plan, work, results = self.plan, self.work, self.results
        # Click-to-dial first, on a server that no overloaded step has left with thousands
        # of dead transactions still retransmitting (after the searches, p99 was 23-30 ms
        # against 8-11 ms on a fresh server).
        say(f"== hookswitch: click-to-dial, {plan.c2d_requests} requests at {C2D_RATE:.0f}/s")
        done = c2d.run(work, server, requests=plan.c2d_requests, rate=C2D_RATE)
        results.c2d = done
        say(f"  request → INVITE p50 {fmt(done.pct(50))} ms  p99 {fmt(done.pct(99))} ms  "
            f"accepted {done.accepted}/{done.requests}  INVITEs seen {len(done.latencies_ms)}")

        hs = Target("hookswitch", server.pid, server.sip, 3, self.receiver.events)
        # CPU per call at fixed rates before the searches, whose overloaded steps leave
        # dead transactions behind (bare sippy's are measured on a fresh process too).
        say(f"== hookswitch: CPU per call at {', '.join(f'{r:.0f}' for r in plan.cpu_rates)}"
            " calls/s, trunk → phone")
        results.cpu_hookswitch = run_fixed(work, hs, self.trunk, plan.cpu, plan.cpu_rates,
                                           "hookswitch-cpu", self.fresh_phone)
        say(f"== hookswitch: CPU per call at {plan.metrics_rate:.0f} calls/s without and "
            "with GET /metrics scraped once a second")
        metered = stepper(work, hs, self.trunk, plan.cpu, "hookswitch-metrics",
                          self.fresh_phone)

        def metered_step(rate: float) -> Step:
            done = metered(rate)
            show(done)
            return done

        cost = cpucost.measure_metrics(metered_step, server.pid, f"{server.http}/metrics",
                                       plan.metrics_rate, plan.metrics_pairs,
                                       limit_s=plan.cpu.seconds * 4 + 60)
        results.metrics = cost
        say(f"  {fmt(cost.scrape_cpu_ms, 2)} ms CPU per scrape ({cost.scrape_bytes} bytes); "
            f"CPU/call scraped - not scraped {fmt(cost.ms_per_call, 3)} ms "
            f"({cost.scrapes} scrapes); per scrape / calls per second "
            f"{fmt(cost.derived_ms_per_call, 3)} ms")

        say("== hookswitch: call-rate search, trunk → registered sipp phone")
        results.trunk = run_search(work, hs, self.trunk, plan.trunk, plan.trunk_start,
                                   "hookswitch", self.fresh_phone)

        say("== hookswitch: call-rate search, 210 → 200 with digest auth")
        hs_auth = Target("hookswitch-auth", server.pid, server.sip, 6, self.receiver.events)
        results.auth = run_search(work, hs_auth, self.auth, plan.auth, plan.auth_start, "auth",
                                  self.fresh_phone)

        knee = best(results.trunk)
        if with_profile and knee is not None:
            say(f"== hookswitch: py-spy at the knee ({knee.rate:.0f} cps)")
            self.phase("profile", lambda: profile_knee(work, self.out, hs, self.trunk,
                                                       knee.rate, 20, self.fresh_phone))

    def call_control(self) -> None:
        """Hold, resume and blind transfer on a fresh server: its own, so that none of the
        searches' phones are registered as the extensions it calls."""
        plan, work = self.plan, self.work / "call-control"
        say(f"== hookswitch: call control, {plan.reinvite_calls} calls one after the other "
            "(hold, resume, blind transfer), on a fresh server")
        if self.receiver.proc is None or self.receiver.proc.poll() is not None:
            self.receiver.start()
        server = Hookswitch(work, free_udp_port(), self.receiver.url)
        server.start()
        try:
            done = reinvite.run(work, server, samples=plan.reinvite_calls,
                                time_limit_s=plan.reinvite_limit_s)
        finally:
            self.stopped("call-control hookswitch", server.stop())
        self.results.call_control = done
        for line in reinvite.describe(done):
            say(line)
        logged = reinvite.server_log_problems(server.server.workdir / "server.log")
        if logged:
            self.results.notes.append(
                f"The call-control hookswitch logged {len(logged)} warnings or errors, the "
                f"first: {logged[0]}")

    def sippy(self) -> None:
        if self.phone is None or self.phone.poll() is not None:
            raise RuntimeError("no sipp phone (the hookswitch phase did not start it)")
        say("== bare sippy b2bua_simple, between the same sipp caller and phone ports")
        bare = BareSippy(self.work / "sippy", ("127.0.0.1", self.phone_port))
        bare.start()
        try:
            sp = Target("sippy", bare.pid, bare.sip)
            rates = ", ".join(f"{r:.0f}" for r in self.plan.cpu_rates)
            say(f"== bare sippy: CPU per call at {rates} calls/s")
            self.results.cpu_sippy = run_fixed(self.work, sp, self.trunk, self.plan.cpu,
                                               self.plan.cpu_rates, "sippy-cpu",
                                               self.fresh_phone)
            say("== bare sippy: call-rate search")
            self.results.sippy = run_search(self.work, sp, self.trunk, self.plan.sippy,
                                            self.plan.sippy_start, "sippy", self.fresh_phone)
        finally:
            self.stopped("b2bua_simple", bare.stop(), -signal.SIGTERM)
            self.phone.stop()
            self.receiver.stop()

    def memory(self) -> None:
        plan = self.plan
        say(f"== hookswitch: memory, {plan.memory_calls} established calls (set up at "
            f"{plan.memory_fill:.0f} cps, no webhook)")
        mem = memory.run(self.work / "memory", None, calls=plan.memory_calls,
                         fill_rate=plan.memory_fill, stop_grace_s=plan.stop_grace_s, say=say)
        self.results.memory = mem
        say(f"  held {mem.held}  RSS {mem.rss_before_mb:.1f} → {mem.rss_after_mb:.1f} MB  "
            f"= {fmt(mem.mb_per_1k)} MB per 1,000 calls")
        if mem.stop_code < 0:
            self.results.notes.append(
                f"The memory run's hookswitch, sent SIGTERM with {mem.held} calls up, had "
                f"not exited {plan.stop_grace_s:.0f} s later and was killed.")
        else:
            self.stopped("memory run's hookswitch", mem.stop_code)

    def stopped(self, name: str, code: int, expected: int = 0) -> None:
        if code != expected:
            self.results.notes.append(f"{name} exited with {code} when stopped")


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return done.stdout.strip() + (" (src/ has uncommitted changes)" if dirty else "")


if __name__ == "__main__":
    raise SystemExit(main())
