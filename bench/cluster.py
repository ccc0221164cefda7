"""The cluster's cost, on this machine (``make bench-cluster``):

    python -m bench.cluster [--quick] [--results DIR]

1. Call setups through Kamailio at fixed rates, with one node and with two nodes behind it
   (PostgreSQL, Redis; harness/cluster.py), and for comparison one node on PostgreSQL that
   the phones reach directly: CPU per call of the nodes (server and events worker) and of
   Kamailio, setup latency, failed calls. On two cores a second node cannot add
   throughput; the steps show what the edge costs per call and that nothing breaks.
2. The API latency of a command carried out by the node that received it against one
   forwarded to the node holding the call: hold and resume of one call, alternately sent to
   the holder and to the other node, timed from request to answer (the answer comes once
   the phones answered their re-INVITEs).

Everything runs on 127.0.0.1; every process started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import processes, sipp
from harness.cluster import Cluster, cluster
from harness.ports import free_udp_port
from harness.server import PASSWORDS, TENANT

from . import procs
from .callrate import Caller, StepSettings, wait_idle
from .reinvite import AnsweringPhone
from .stats import fmt, percentile

# The benchmark's users make many API requests a second; calls end in 200 ms.
SERVER_EXTRA = "rate_limit = 100000\nrate_limit_burst = 100000"


@dataclass(frozen=True)
class ClusterStep:
    setup: str  # "1 node, direct", "1 node + edge", "2 nodes + edge"
    rate: float
    calls: int
    failed: int
    nodes_cpu_s: float
    edge_cpu_s: float
    setup_p50_ms: float | None
    setup_p99_ms: float | None

    @property
    def nodes_ms_per_call(self) -> float | None:
        done = self.calls - self.failed
        return self.nodes_cpu_s * 1000 / done if done else None

    @property
    def edge_ms_per_call(self) -> float | None:
        done = self.calls - self.failed
        return self.edge_cpu_s * 1000 / done if done else None


def _cpu(pids: list[int]) -> float:
    return sum(procs.cpu_seconds(pid) for pid in pids)


def _edge_pids(running: Cluster) -> list[int]:
    return [running.kamailio.pid] if running.kamailio is not None else []


def call_steps(work: Path, rates: list[float], seconds: float) -> list[ClusterStep]:
    steps = []
    for setup, nodes, edge in (("1 node, direct", 1, False), ("1 node + edge", 1, True),
                               ("2 nodes + edge", 2, True)):
        folder = work / setup.replace(" ", "-").replace(",", "")
        folder.mkdir(parents=True)
        with cluster(folder, nodes, edge=edge, server_extra=SERVER_EXTRA) as running:
            address = running.edge if edge else running.node(1).sip
            phone_port = free_udp_port()
            sipp.register(folder, phone_port, address, "200", PASSWORDS["200"])
            node_pids = [node.process.pid for node in running.nodes if node.process]
            caller = Caller("uac_auth_call.xml", free_udp_port(), "200",
                            auth=("210", PASSWORDS["210"]))
            settings = StepSettings(seconds=seconds)
            for number, rate in enumerate(rates, start=1):
                phone = sipp.start_uas(folder, phone_port, seconds * 4 + 60)
                try:
                    for pid in node_pids:
                        wait_idle(pid, settings.idle_timeout_s)
                    steps.append(_step(folder, setup, address, caller, rate, settings,
                                       node_pids, _edge_pids(running), number))
                finally:
                    phone.stop()
                print(_row(steps[-1]), flush=True)
    return steps


def _step(folder: Path, setup: str, address: tuple[str, int], caller: Caller, rate: float,
          settings: StepSettings, node_pids: list[int], edge_pids: list[int],
          number: int) -> ClusterStep:
    calls = max(1, round(rate * settings.seconds))
    nodes_before, edge_before = _cpu(node_pids), _cpu(edge_pids)
    uac = sipp.Uac(folder, f"step-{number}", caller.scenario, caller.port, address,
                   caller.service, rate=rate, calls=calls, hold_ms=settings.hold_ms,
                   limit=max(50, int(rate * 8)), auth=caller.auth)
    load = uac.finish()
    # The last calls' records reach the database a moment after their BYE.
    for pid in node_pids:
        wait_idle(pid, 10.0)
    return ClusterStep(setup, rate, calls, load.failed, _cpu(node_pids) - nodes_before,
                       _cpu(edge_pids) - edge_before, percentile(load.setup_ms, 50),
                       percentile(load.setup_ms, 99))


def _row(step: ClusterStep) -> str:
    return (f"  {step.setup:<16} {step.rate:>5.0f} cps  {step.calls - step.failed:>5}/"
            f"{step.calls} calls  nodes {fmt(step.nodes_ms_per_call)} ms/call  "
            f"edge {fmt(step.edge_ms_per_call)} ms/call  setup p50 {fmt(step.setup_p50_ms)}"
            f" / p99 {fmt(step.setup_p99_ms)} ms")


@contextmanager
def _answering(folder: Path, running: Cluster) -> Iterator[None]:
    """Jane and John as phones that answer everything, registered through the edge."""
    phones = []
    try:
        for extension in ("210", "200"):
            port = free_udp_port()
            sipp.register(folder, port, running.edge, extension, PASSWORDS[extension])
            phones.append(AnsweringPhone(port, extension))
            phones[-1].start()
        yield
    finally:
        for phone in phones:
            phone.stop()


def forwarding(work: Path, samples: int) -> dict[str, list[float]]:
    """Milliseconds per hold or resume: sent to the node holding the call (``local``) and
    to the other node (``forwarded``), alternately, on one click-to-dial call."""
    folder = work / "forwarding"
    folder.mkdir(parents=True)
    timings: dict[str, list[float]] = {"local": [], "forwarded": []}
    with cluster(folder, 2, server_extra=SERVER_EXTRA) as running, _answering(folder, running):
        holder, other = running.node(2), running.node(1)
        headers = {"Authorization": "Bearer tok-jane"}
        user = {"tenant_id": TENANT, "user_extension": "210"}
        with httpx.Client(timeout=10, headers=headers) as client:
            started = client.post(holder.http + "/v3/call_control/", json={
                "command": "click-to-dial", "user": user, "payload": {"destination": "200"}})
            started.raise_for_status()
            leg = started.json()["call_leg_id"]
            holder.wait_states("210", ["RINGING", "ACTIVE"], timeout=20)
            for sample in range(samples):
                for name, node in (("local", holder), ("forwarded", other)):
                    for command in ("hold", "resume"):
                        began = time.perf_counter()
                        answer = client.post(node.http + "/v3/call_control/", json={
                            "command": command, "user": user,
                            "payload": {"call_leg_id": leg}})
                        took = (time.perf_counter() - began) * 1000
                        if answer.status_code != 200:
                            raise RuntimeError(f"{command} on {name} (sample {sample}): "
                                               f"{answer.status_code} {answer.text}")
                        timings[name].append(took)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the cluster's cost per call and hop")
    parser.add_argument("--quick", action="store_true", help="short steps, fewer samples")
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.results or Path("bench/results") / ("cluster-quick" if args.quick
                                                   else "cluster")
    out = out.resolve()  # the nodes run in their own folders
    shutil.rmtree(out, ignore_errors=True)
    work = out / "work"
    work.mkdir(parents=True)
    rates, seconds, samples = ([50.0], 3.0, 20) if args.quick else ([50.0, 100.0], 10.0, 100)
    began = time.monotonic()
    try:
        print("== call setups (auth calls 210 → 200), CPU per call", flush=True)
        steps = call_steps(work, rates, seconds)
        print("== hold/resume by API: on the holder, and forwarded by the other node",
              flush=True)
        timings = forwarding(work, samples)
    finally:
        processes.stop_all()
    summary = _summary(steps, timings)
    (out / "results.json").write_text(json.dumps({
        "steps": [step.__dict__ for step in steps], "api_ms": timings,
        "seconds": round(time.monotonic() - began)}, indent=2))
    for name, values in timings.items():
        print(f"  {name:<9} {len(values)} commands  p50 {fmt(percentile(values, 50))} ms  "
              f"p99 {fmt(percentile(values, 99))} ms")
    print("SUMMARY " + " ".join(f"{key}={value}" for key, value in summary.items()),
          flush=True)
    return 0


def _summary(steps: list[ClusterStep], timings: dict[str, list[float]]) -> dict[str, str]:
    def at(setup: str, what: str) -> str:
        rate = max(step.rate for step in steps)
        value = next((getattr(step, what) for step in steps
                      if step.setup == setup and step.rate == rate), None)
        return fmt(value)

    return {
        "direct_cpu_ms_per_call": at("1 node, direct", "nodes_ms_per_call"),
        "edge1_cpu_ms_per_call": at("1 node + edge", "nodes_ms_per_call"),
        "edge2_cpu_ms_per_call": at("2 nodes + edge", "nodes_ms_per_call"),
        "kamailio_cpu_ms_per_call": at("2 nodes + edge", "edge_ms_per_call"),
        "cluster_failed_calls": str(sum(step.failed for step in steps)),
        "local_cmd_p50_ms": fmt(percentile(timings["local"], 50)),
        "local_cmd_p99_ms": fmt(percentile(timings["local"], 99)),
        "forwarded_cmd_p50_ms": fmt(percentile(timings["forwarded"], 50)),
        "forwarded_cmd_p99_ms": fmt(percentile(timings["forwarded"], 99)),
    }


if __name__ == "__main__":
    raise SystemExit(main())
