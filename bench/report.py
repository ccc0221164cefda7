"""The results table (Markdown), the SUMMARY line, results.json and the PNG plot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .c2d import C2dResult
from .callrate import EVENT_P99_LIMIT_MS, SETUP_P99_LIMIT_MS, Step, at_rate, best, lower_bound
from .cpucost import MetricsCost, cpu_ms_per_call, ratio
from .memory import MemoryResult
from .reinvite import METRICS, ReinviteResult
from .stats import fmt

# The call-control latencies in the table and the SUMMARY line (results.json has all METRICS)
SUMMARY_METRICS = ("hold", "resume", "transfer", "reconnect")
CPU_RATE = 100.0  # the fixed rate of cpu_ms_per_call, sippy_cpu_ms_per_call, cpu_ratio


@dataclass
class Results:
    mode: str
    command: str
    started: str
    machine: dict[str, str]
    trunk: list[Step] = field(default_factory=list)
    sippy: list[Step] = field(default_factory=list)
    auth: list[Step] = field(default_factory=list)
    cpu_hookswitch: list[Step] = field(default_factory=list)  # fixed rates (CPU per call)
    cpu_sippy: list[Step] = field(default_factory=list)
    metrics: MetricsCost | None = None
    c2d: C2dResult | None = None
    call_control: ReinviteResult | None = None
    memory: MemoryResult | None = None
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, float | None]:
        hs, sp, auth = best(self.trunk), best(self.sippy), best(self.auth)
        cpu, sippy_cpu = self.cpu_at("hookswitch", CPU_RATE), self.cpu_at("sippy", CPU_RATE)
        call = hs.rate if hs else 0.0
        base = sp.rate if sp else 0.0
        return {
            "call_cps": call,
            "sippy_cps": base,
            "ratio": call / base if base else None,
            "auth_call_cps": auth.rate if auth else 0.0,
            "c2d_p50_ms": self.c2d.pct(50) if self.c2d else None,
            "c2d_p99_ms": self.c2d.pct(99) if self.c2d else None,
            **{f"{name}_p{pct}_ms": self.call_control.pct(name, pct) if self.call_control else None
               for name in SUMMARY_METRICS for pct in (50, 99)},
            "event_p99_ms": hs.event_ms(99) if hs else None,
            "rss_mb_per_1k_calls": self.memory.mb_per_1k if self.memory else None,
            # 1 when the search hit a safety bound before any step failed (a lower bound)
            "call_cps_lower_bound": float(lower_bound(self.trunk)),
            "sippy_cps_lower_bound": float(lower_bound(self.sippy)),
            "auth_call_cps_lower_bound": float(lower_bound(self.auth)),
            "cpu_ms_per_call": cpu,
            "sippy_cpu_ms_per_call": sippy_cpu,
            "cpu_ratio": ratio(cpu, sippy_cpu),
            "metrics_cpu_ms_per_call": self.metrics.ms_per_call if self.metrics else None,
            "metrics_scrape_cpu_ms": self.metrics.scrape_cpu_ms if self.metrics else None,
        }

    def cpu_at(self, system: str, rate: float) -> float | None:
        """CPU ms per call of the fixed-rate step at ``rate`` ("hookswitch" or "sippy")."""
        steps = self.cpu_hookswitch if system == "hookswitch" else self.cpu_sippy
        step = at_rate(steps, rate)
        return step.cpu_ms_per_call if step else None


_DIGITS = {"ratio": 2, "call_cps": 0, "sippy_cps": 0, "auth_call_cps": 0,
           "call_cps_lower_bound": 0, "sippy_cps_lower_bound": 0,
           "auth_call_cps_lower_bound": 0, "cpu_ms_per_call": 2, "sippy_cpu_ms_per_call": 2,
           "cpu_ratio": 2, "metrics_cpu_ms_per_call": 3, "metrics_scrape_cpu_ms": 2}


def rate_text(steps: list[Step]) -> str:
    """A search's sustained rate for the table: ``≥ N`` when it is only a lower bound."""
    found = best(steps)
    value = fmt(found.rate if found else 0.0, 0)
    return f"≥ {value}" if lower_bound(steps) else value


def cpu_table(results: Results) -> list[str]:
    """CPU ms per call of both systems at the same fixed offered rates."""
    rates = sorted({s.rate for s in [*results.cpu_hookswitch, *results.cpu_sippy]})
    if not rates:
        return []
    out = ["", "CPU ms per call at fixed offered rates, trunk → phone (hookswitch: server and "
           "events worker; bare sippy: b2bua_simple; user + system time from /proc over the "
           "step and its event drain, divided by the calls completed):", "",
           "| rate cps | hookswitch | bare sippy | hookswitch / bare sippy | steps |",
           "|---:|---:|---:|---:|---|"]
    for rate in rates:
        hs, sp = at_rate(results.cpu_hookswitch, rate), at_rate(results.cpu_sippy, rate)
        a = hs.cpu_ms_per_call if hs else None
        b = sp.cpu_ms_per_call if sp else None
        verdicts = "; ".join(f"{name} {step.verdict}" for name, step in
                             (("hookswitch", hs), ("sippy", sp)) if step is not None)
        out.append(f"| {fmt(rate, 0)} | {fmt(a, 2)} | {fmt(b, 2)} | {fmt(ratio(a, b), 2)} "
                   f"| {verdicts} |")
    return out


def metrics_rows(cost: MetricsCost | None) -> list[tuple[str, str, str]]:
    if cost is None:
        return []
    return [
        (f"GET /metrics scraped every {cost.interval_s:g} s at {fmt(cost.rate, 0)} calls/s: "
         f"CPU ms per call scraped - not scraped ({len(cost.scraped)} + {len(cost.plain)} "
         f"steps, {cost.scrapes} scrapes; metrics_cpu_ms_per_call)",
         f"{fmt(cost.ms_per_call, 3)} ({fmt(cpu_ms_per_call(cost.scraped), 2)} - "
         f"{fmt(cpu_ms_per_call(cost.plain), 2)})", "—"),
        (f"  server CPU ms per scrape, idle, back to back ({cost.scrape_bytes} bytes; "
         "metrics_scrape_cpu_ms); per call at that rate",
         f"{fmt(cost.scrape_cpu_ms, 2)}; {fmt(cost.derived_ms_per_call, 4)}", "—"),
    ]


def summary_line(results: Results) -> str:
    values = results.summary()
    return "SUMMARY " + " ".join(
        f"{name}={fmt(value, _DIGITS.get(name, 1))}" for name, value in values.items()
    )


def _at(step: Step | None, what: str) -> str:
    if step is None:
        return "n/a"
    if what == "cpu":
        return fmt(step.cpu_ms_per_call, 2)
    if what == "setup":
        return f"{fmt(step.setup_ms(50), 0)} / {fmt(step.setup_ms(99), 0)}"
    return fmt(step.event_ms(99), 1)


def table(results: Results) -> str:
    s = results.summary()
    hs, sp, auth = best(results.trunk), best(results.sippy), best(results.auth)
    c2d, mem, cc = results.c2d, results.memory, results.call_control
    rows = [
        (f"sustained call rate, trunk → phone: zero failed calls, setup p99 ≤ "
         f"{SETUP_P99_LIMIT_MS:.0f} ms, events p99 ≤ {EVENT_P99_LIMIT_MS / 1000:g} s "
         "(call_cps / sippy_cps; ≥: lower bound, no step failed)",
         rate_text(results.trunk), rate_text(results.sippy)),
        ("ratio hookswitch / bare sippy",
         fmt(s["ratio"], 2) + (" (from a lower bound)" if lower_bound(results.trunk)
                               or lower_bound(results.sippy) else ""), ""),
        (f"CPU ms per call at {CPU_RATE:.0f} calls/s offered (cpu_ms_per_call / "
         "sippy_cpu_ms_per_call; cpu_ratio)",
         f"{fmt(s['cpu_ms_per_call'], 2)}", f"{fmt(s['sippy_cpu_ms_per_call'], 2)}; "
         f"ratio {fmt(s['cpu_ratio'], 2)}"),
        ("CPU ms per call at that rate (server process and its child processes, all threads)",
         _at(hs, "cpu"), _at(sp, "cpu")),
        ("call setup p50 / p99 ms at that rate (INVITE → 200, sipp)",
         _at(hs, "setup"), _at(sp, "setup")),
        ("digest-authenticated ext → ext call setups/s (auth_call_cps)",
         rate_text(results.auth), "—"),
        ("  its CPU ms per call; setup p50 / p99 ms (401 round trip included)",
         f"{_at(auth, 'cpu')}; {_at(auth, 'setup')}", "—"),
        (f"click-to-dial request → INVITE at the phone, p50 / p99 ms "
         f"({c2d.requests if c2d else 0} requests at {fmt(c2d.rate if c2d else None, 1)}/s)",
         f"{fmt(s['c2d_p50_ms'])} / {fmt(s['c2d_p99_ms'])}", "—"),
        *((f"{METRICS[name]}, p50 / p99 ms ({cc.samples if cc else 0} calls, "
           f"{cc.lost(name) if cc else 0} lost)",
           f"{fmt(s[f'{name}_p50_ms'])} / {fmt(s[f'{name}_p99_ms'])}", "—")
          for name in SUMMARY_METRICS),
        ("call event latency p99 ms at call_cps (SIP message in → webhook receiver)",
         fmt(s["event_p99_ms"]), "—"),
        (f"RSS growth MB per 1,000 held calls ({mem.held if mem else 0} held, "
         f"{fmt(mem.rss_before_mb if mem else None)} → {fmt(mem.rss_after_mb if mem else None)}"
         " MB)", fmt(s["rss_mb_per_1k_calls"]), "—"),
        *metrics_rows(results.metrics),
    ]
    out = ["| metric | hookswitch | bare sippy b2bua_simple |", "|---|---:|---:|"]
    out += [f"| {name} | {a} | {b} |" for name, a, b in rows]
    out += cpu_table(results)
    out += ["", "Every step of the searches (a step offers calls at a fixed rate; clean = no "
            f"failed call, call setup p99 ≤ {SETUP_P99_LIMIT_MS:.0f} ms and, for hookswitch, "
            f"every call event delivered with p99 ≤ {EVENT_P99_LIMIT_MS:.0f} ms; a search "
            "grows the rate until a step is not clean, then bisects; other load = cores "
            "that processes outside the benchmark kept busy during the step):", ""]
    out += ["| system | rate cps | calls | failed | retrans | setup p50 / p99 ms "
            "| CPU ms/call | events got / expected | event p50 / p99 ms | other load | verdict |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for step in [*results.trunk, *results.auth, *results.sippy]:
        load = step.load
        events = (f"{len(step.events)} / {step.events_expected}"
                  if step.events_expected else "—")
        lat = (f"{fmt(step.event_ms(50))} / {fmt(step.event_ms(99))}"
               if step.events else "—")
        out.append(
            f"| {step.system} | {fmt(step.rate, 0)} | {load.calls} | {load.failed} "
            f"| {load.counts.retransmissions} | {_at(step, 'setup')} | {_at(step, 'cpu')} "
            f"| {events} | {lat} | {step.foreign_cores:.2f} | {step.verdict} |"
        )
    if c2d is not None and (c2d.lost or c2d.accepted != c2d.requests):
        out += ["", f"click-to-dial: {c2d.accepted} of {c2d.requests} requests accepted, "
                f"{c2d.lost} INVITEs not seen"]
    if cc is not None and (cc.complete != cc.samples or cc.problems):
        out += ["", f"call control: {cc.complete} of {cc.samples} calls went through every "
                "step; " + "; ".join(f"{count} times: {problem}"
                                     for problem, count in cc.problems.items())]
    if mem is not None and mem.failed:
        out += ["", f"memory run: {mem.failed} calls failed while filling"]
    for name, steps in (("hookswitch", results.trunk), ("hookswitch-auth", results.auth),
                        ("sippy", results.sippy)):
        if lower_bound(steps):
            out += ["", f"No {name} step failed before the search's safety bound (steps, "
                    "time or rate): its rate is a lower bound, not a knee."]
    out += [f"\n{note}" for note in results.notes]
    return "\n".join(out) + "\n"


def to_json(results: Results) -> dict[str, Any]:
    def step(s: Step) -> dict[str, Any]:
        return {
            "system": s.system, "rate": s.rate, "calls": s.load.calls,
            "successful": s.load.counts.successful, "failed": s.load.failed,
            "retransmissions": s.load.counts.retransmissions, "exit_code": s.load.exit_code,
            "seconds": round(s.load.seconds, 2), "cpu_s": round(s.cpu_s, 3),
            "setup_p50_ms": s.setup_ms(50), "setup_p99_ms": s.setup_ms(99),
            "events": len(s.events), "events_expected": s.events_expected,
            "event_p50_ms": s.event_ms(50), "event_p99_ms": s.event_ms(99),
            "passed": s.passed, "cpu_ms_per_call": s.cpu_ms_per_call,
        }

    return {
        "mode": results.mode, "command": results.command, "started": results.started,
        "machine": results.machine, "wall_s": round(results.wall_s, 1),
        "summary": results.summary(),
        "steps": [step(s) for s in [*results.trunk, *results.auth, *results.sippy]],
        "cpu_steps": [step(s) for s in [*results.cpu_hookswitch, *results.cpu_sippy]],
        "metrics": None if results.metrics is None else {
            "rate": results.metrics.rate, "interval_s": results.metrics.interval_s,
            "plain": [step(s) for s in results.metrics.plain],
            "scraped": [step(s) for s in results.metrics.scraped],
            "scrapes": results.metrics.scrapes,
            "scrape_cpu_ms": results.metrics.scrape_cpu_ms,
            "scrape_bytes": results.metrics.scrape_bytes,
            "ms_per_call": results.metrics.ms_per_call,
            "derived_ms_per_call": results.metrics.derived_ms_per_call,
        },
        "c2d": None if results.c2d is None else {
            "requests": results.c2d.requests, "accepted": results.c2d.accepted,
            "rate": results.c2d.rate, "p50_ms": results.c2d.pct(50),
            "p99_ms": results.c2d.pct(99), "max_ms": results.c2d.pct(100),
        },
        "call_control": None if results.call_control is None else results.call_control.to_json(),
        "memory": None if results.memory is None else vars(results.memory),
        "notes": results.notes,
    }


def plot(results: Results, path: Path) -> bool:
    """Rate against failed calls, setup latency and (hookswitch) event latency; False when
    matplotlib is missing. Hollow markers: steps that were not clean."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (failed_ax, setup_ax, event_ax) = plt.subplots(1, 3, figsize=(16, 4.8))
    series = [("hookswitch trunk → phone", results.trunk, "tab:blue"),
              ("hookswitch ext → ext (digest)", results.auth, "tab:green"),
              ("bare sippy b2bua_simple", results.sippy, "tab:orange")]
    for label, steps, color in series:
        ordered = sorted(steps, key=lambda s: s.rate)
        if not ordered:
            continue
        rates = [s.rate for s in ordered]
        failed_ax.plot(rates, [s.load.failed for s in ordered], "-", color=color, label=label)
        setup_ax.plot(rates, [s.setup_ms(50) or 0 for s in ordered], "-", color=color,
                      label=f"{label} p50")
        setup_ax.plot(rates, [s.setup_ms(99) or 0 for s in ordered], "--", color=color,
                      label=f"{label} p99")
        if ordered[0].events_expected:
            event_ax.plot(rates, [s.event_ms(99) or 0 for s in ordered], "-", color=color,
                          label=f"{label} p99")
        for step in ordered:
            face = color if step.passed else "white"
            failed_ax.plot(step.rate, step.load.failed, "o", color=color, mfc=face)
            setup_ax.plot(step.rate, step.setup_ms(99) or 0, "s", color=color, mfc=face)
            if step.events_expected:
                event_ax.plot(step.rate, step.event_ms(99) or 0, "o", color=color, mfc=face)
    event_ax.axhline(EVENT_P99_LIMIT_MS, color="grey", linestyle=":", label="clean-step limit")
    failed_ax.set(xlabel="offered call rate (calls/s)", ylabel="failed calls per step",
                  title="failed calls (hollow: step not clean)")
    setup_ax.set(xlabel="offered call rate (calls/s)", ylabel="INVITE → 200 (ms)",
                 title="call setup latency", yscale="log")
    event_ax.set(xlabel="offered call rate (calls/s)", ylabel="SIP message → webhook (ms)",
                 title="call event latency p99 (hookswitch)", yscale="log")
    for ax in (failed_ax, setup_ax, event_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"hookswitch vs bare sippy ({results.mode} run, {results.started})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write(results: Results, directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    text = table(results)
    head = (f"# hookswitch benchmark ({results.mode})\n\n{results.started}, "
            f"{results.wall_s:.0f} s\n\nCommand: `{results.command}`\n\nMachine: "
            + "; ".join(f"{k}: {v}" for k, v in results.machine.items()) + "\n\n")
    (directory / "table.md").write_text(head + text + "\n" + summary_line(results) + "\n")
    (directory / "results.json").write_text(json.dumps(to_json(results), indent=2) + "\n")
    if not plot(results, directory / "plot.png"):
        results.notes.append("plot.png not written: matplotlib is not installed")
    return text
