"""The benchmark's pure rules: when a step is clean, how a search steps and stops, which
rate is sustained, when it is only a lower bound, and the SUMMARY keys built on them."""

from __future__ import annotations

from collections.abc import Callable

from bench.callrate import (
    Event,
    Step,
    StepSettings,
    at_rate,
    best,
    lower_bound,
    search,
)
from bench.cpucost import MetricsCost, cpu_ms_per_call
from bench.report import Results, rate_text, summary_line
from harness.sipp import Counts, LoadResult


def step(rate: float, *, failed: int = 0, setup_ms: float = 4.0, events: int = 0,
         event_ms: float = 10.0, cpu_s: float = 1.0, system: str = "x") -> Step:
    calls = int(rate * 10)
    load = LoadResult(rate, calls, 1 if failed else 0,
                      Counts(calls, calls - failed, failed, 0), [setup_ms] * calls, 10.0)
    got = [Event(1.0 + event_ms / 1000, 1_000_000, "ringing", str(n)) for n in range(events)]
    return Step(system, load, cpu_s, got, events)


def test_clean_needs_no_failed_call_setup_p99_within_200_ms_and_events_on_time() -> None:
    assert step(100).passed
    assert not step(100, failed=1).passed
    assert step(100, setup_ms=200).passed
    slow = step(100, setup_ms=201)
    assert not slow.passed and slow.verdict == "setup p99 > 200 ms"
    assert step(100, events=30, event_ms=900).passed
    assert not step(100, events=30, event_ms=1100).passed


def system(knee: float) -> Callable[[float], Step]:
    """A system whose steps are clean up to ``knee`` calls/s."""
    return lambda rate: step(rate, setup_ms=4 if rate <= knee else 500)


def test_search_grows_past_any_fixed_step_count_until_a_step_fails() -> None:
    settings = StepSettings(seconds=1, max_steps=20, resolution=5, growth=1.5, bisect_steps=2)
    steps = search(system(400), 60, settings, lambda s: None)
    rates = [s.rate for s in steps]
    assert rates[:6] == [60, 90, 135, 200, 300, 450]  # six growth steps, the sixth fails
    assert len(steps) == 8  # then two bisection steps
    found = best(steps)
    assert found is not None and 300 <= found.rate <= 400
    assert not lower_bound(steps)


def test_a_search_stopped_by_its_safety_bound_is_a_lower_bound() -> None:
    settings = StepSettings(seconds=1, max_steps=4, resolution=5, growth=1.5)
    steps = search(system(10_000), 60, settings, lambda s: None)
    assert len(steps) == 4 and lower_bound(steps)
    found = best(steps)
    assert found is not None and found.rate == 200
    assert rate_text(steps) == "≥ 200"


def test_the_time_bound_stops_a_search() -> None:
    ticks = iter(range(0, 1000, 10))  # every clock read is 10 s later
    settings = StepSettings(seconds=1, max_steps=100, max_search_s=25)
    steps = search(system(10_000), 60, settings, lambda s: None, clock=lambda: next(ticks))
    assert len(steps) == 2 and lower_bound(steps)


def test_the_rate_bound_stops_a_search() -> None:
    settings = StepSettings(seconds=1, max_steps=100, growth=2.0, resolution=10, max_rate=400)
    steps = search(system(10_000), 100, settings, lambda s: None)
    assert [s.rate for s in steps] == [100, 200, 400] and lower_bound(steps)


def test_a_first_step_that_fails_halves_the_rate() -> None:
    settings = StepSettings(seconds=1, max_steps=10, resolution=5, bisect_steps=3)
    steps = search(system(50), 150, settings, lambda s: None)
    assert [s.rate for s in steps][:2] == [150, 75]
    found = best(steps)
    assert found is not None and found.rate <= 50 and not lower_bound(steps)


def test_best_ignores_a_clean_step_above_a_failed_one() -> None:
    steps = [step(100), step(200, failed=3), step(150), step(250)]
    found = best(steps)
    assert found is not None and found.rate == 150
    assert not lower_bound(steps)
    assert rate_text(steps) == "150"
    assert best([step(100, failed=1)]) is None and not lower_bound([step(100, failed=1)])


def test_cpu_per_call_and_the_summary_keys() -> None:
    hs = [step(50, cpu_s=4.0), step(100, cpu_s=8.0), step(150, cpu_s=15.0)]
    sp = [step(50, cpu_s=2.0), step(100, cpu_s=4.0), step(150, cpu_s=6.0)]
    assert at_rate(hs, 100) is hs[1] and at_rate(hs, 120) is None
    assert cpu_ms_per_call(hs[:2]) == 12_000 / 1500
    results = Results("quick", "cmd", "now", {}, trunk=[step(100), step(200, failed=1)],
                      sippy=[step(100), step(200)], cpu_hookswitch=hs, cpu_sippy=sp)
    results.metrics = MetricsCost(100, 1.0, plain=[step(100, cpu_s=8.0)],
                                  scraped=[step(100, cpu_s=8.1)], scrapes=10,
                                  scrape_cpu_ms=2.0)
    summary = results.summary()
    assert summary["cpu_ms_per_call"] == 8.0 and summary["sippy_cpu_ms_per_call"] == 4.0
    assert summary["cpu_ratio"] == 2.0
    assert summary["call_cps_lower_bound"] == 0.0 and summary["sippy_cps_lower_bound"] == 1.0
    assert abs(summary["metrics_cpu_ms_per_call"] - 0.1) < 1e-9  # type: ignore[operator]
    assert results.metrics.derived_ms_per_call == 0.02
    line = summary_line(results)
    # The keys the docs and earlier runs parse come first, in their order.
    assert line.startswith("SUMMARY call_cps=100 sippy_cps=200 ratio=0.50 auth_call_cps=0 ")
    assert " call_cps_lower_bound=0 sippy_cps_lower_bound=1 " in line
    assert " cpu_ms_per_call=8.00 sippy_cpu_ms_per_call=4.00 cpu_ratio=2.00 " in line
    assert " metrics_cpu_ms_per_call=0.100 metrics_scrape_cpu_ms=2.00" in line
