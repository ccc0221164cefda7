"""The tarpit: who waits, how long, and how much it remembers (a fake clock, no I/O)."""

from __future__ import annotations

from hookswitch.sip.tarpit import Tarpit

SOURCE, OTHER_SOURCE = "203.0.113.7", "198.51.100.2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tarpit(clock: Clock, **options: float) -> Tarpit:
    return Tarpit(clock=clock, **options)


def fail(pit: Tarpit, times: int, source: str = SOURCE, user: str = "200") -> None:
    for _ in range(times):
        pit.failed(source, user)


def test_the_first_failures_are_free_then_the_delay_doubles_up_to_the_maximum() -> None:
    pit = tarpit(Clock())
    delays = []
    for _ in range(12):
        pit.failed(SOURCE, "200")
        delays.append(pit.delay(SOURCE, "200"))
    assert delays == [0, 0, 0, 0, 0, 0.25, 0.5, 1, 2, 4, 8, 8]


def test_another_user_from_the_same_source_and_the_same_user_elsewhere_do_not_wait() -> None:
    pit = tarpit(Clock())
    fail(pit, 10)
    assert pit.delay(SOURCE, "200") > 0
    assert pit.delay(SOURCE, "210") == 0
    assert pit.delay(OTHER_SOURCE, "200") == 0


def test_a_success_clears_the_pair() -> None:
    pit = tarpit(Clock())
    fail(pit, 10)
    pit.succeeded(SOURCE, "200")
    assert pit.delay(SOURCE, "200") == 0


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    pit = tarpit(clock, window=60.0)
    fail(pit, 7)
    clock.now += 59
    assert pit.delay(SOURCE, "200") == 0.5
    clock.now += 2
    assert pit.delay(SOURCE, "200") == 0


def test_memory_stays_bounded_under_a_scan() -> None:
    pit = tarpit(Clock(), max_keys=100)
    for n in range(5000):
        fail(pit, 3, source=f"10.0.{n // 250}.{n % 250}", user=str(n))
    fail(pit, 1000, user="200")
    assert len(pit._failures) == 100
    assert len(pit._failures[(SOURCE, "200")]) <= pit.free_failures + 8
    assert pit.delay(SOURCE, "200") == 8  # the newest pair is kept, the oldest evicted
