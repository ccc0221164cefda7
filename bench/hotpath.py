"""Profile hookswitch alone at one call rate (a quick loop for work on the hot path).

    python -m bench.hotpath [--rate 40] [--seconds 20] [--out bench/results/hotpath]

Starts the same server, receiver and sipp phone as ``bench.run``, offers trunk calls at
``--rate`` for ``--seconds`` (under py-spy, GIL holder only, unless ``--no-profile``) and
prints the step, the CPU per call of every thread of the server and its events worker, and
the hot spots. Loopback only; every process started is stopped.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

from harness import processes, sipp
from harness.ports import free_udp_port

from . import procs, profile
from .callrate import Caller, StepSettings, Target, run_step, wait_idle
from .run import ROOT, TRUNK_CALLER, show
from .systems import CALLEE, CALLEE_NUMBER, PASSWORDS, Hookswitch, Receiver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--no-profile", action="store_true", help="just the step")
    parser.add_argument("--no-webhook", action="store_true", help="no webhook attached")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "hotpath")
    args = parser.parse_args(argv)
    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)  # a fresh database every run
    work.mkdir(parents=True)
    receiver = Receiver(work)
    trunk_port, phone_port = free_udp_port(), free_udp_port()
    caller = Caller("uac_trunk_call.xml", trunk_port, CALLEE_NUMBER,
                    keys={"caller": TRUNK_CALLER})
    try:
        receiver.start()
        server = Hookswitch(work / "hookswitch", trunk_port,
                            None if args.no_webhook else receiver.url)
        server.start()
        sipp.register(work, phone_port, server.sip, CALLEE, PASSWORDS[CALLEE])
        phone = sipp.start_uas(work, phone_port, args.seconds * 4 + 120)
        target = Target("hookswitch", server.pid, server.sip, 0 if args.no_webhook else 3,
                        receiver.events)
        wait_idle(server.pid)
        spy = None
        if not args.no_profile:
            spy = profile.record(server.pid, args.out / "profile.txt", args.seconds,
                                 fmt="raw", gil=True)
        settings = StepSettings(seconds=args.seconds + (0 if spy is None else 2), drain_s=10)
        pids = [server.pid, *procs.children(server.pid)]
        names = {tid: name for pid in pids for tid, name in thread_names(pid).items()}
        before = {tid: cpu for pid in pids for tid, cpu in thread_cpu(pid).items()}
        assert receiver.proc is not None
        others = {"webhook receiver": receiver.proc.pid, "sipp phone": phone.pid}
        others_before = {name: procs.cpu_seconds(pid) for name, pid in others.items()}
        step = run_step(work, target, caller, args.rate, settings, "hotpath")
        show(step)
        after = {tid: cpu for pid in pids for tid, cpu in thread_cpu(pid).items()}
        for pid in pids[1:]:
            names[pid] = f"worker {names.get(pid, pid)}"
        calls = step.load.counts.successful or 1
        print("CPU ms per call by thread (user + system; 'worker': the events worker):")
        for tid, (user, system) in sorted(after.items(), key=lambda kv: -sum(kv[1])):
            du = (user - before.get(tid, (0, 0))[0]) * 1000 / calls
            ds = (system - before.get(tid, (0, 0))[1]) * 1000 / calls
            if du + ds >= 0.05:
                print(f"  {names.get(tid, str(tid)):28} {du:6.2f} + {ds:5.2f}")
        print("CPU ms per call of the other processes:")
        for name, pid in others.items():
            used = procs.cpu_seconds(pid) - others_before[name]
            print(f"  {name:28} {used * 1000 / calls:6.2f}")
        if spy is not None:
            spy.wait(30)
            print(profile.render(profile.hot_spots(args.out / "profile.txt")))
    finally:
        processes.stop_all()
    return 0


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """Per thread of ``pid``: user and system CPU seconds so far."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = procs.stat_fields(task / "stat")
        out[int(task.name)] = (int(fields[11]) / procs.TICKS, int(fields[12]) / procs.TICKS)
    return out


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id → Python thread name, from ``py-spy dump``."""
    exe = profile.pyspy()
    if exe is None:
        return {}
    dump = subprocess.run([exe, "dump", "--pid", str(pid)], capture_output=True, text=True,
                          check=False).stdout
    return {int(tid, 0): name for tid, name in
            re.findall(r'^Thread (\S+) \([^)]*\): "([^"]*)"', dump, re.MULTILINE)}


if __name__ == "__main__":
    raise SystemExit(main())
