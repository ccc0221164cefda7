"""The call event body, against the vendor's documented Example 1 (CALL-EVENTS.md)."""

from __future__ import annotations

from dataclasses import dataclass

from hookswitch.events.payload import HeldTime, call_event, summary_event

# The RINGING event of the docs' Example 1: an external call from +3228992675 to 200.
EXAMPLE_1 = {
    "tenant_id": "b11d749b-8eb7-4236-a068-3d94ba3860d6",
    "caller_number": "+3228992675",
    "direction": "in",
    "callee_name": "John Doe",
    "state": "RINGING",
    "caller_name": "+3228992675",
    "callee_number": "200",
    "user_extension": "200",
    "id": "590e9492-cbbc-4252-8205-7eb595099b5f",
    "timestamp": "1765209366386177",
}


@dataclass(frozen=True)
class Leg:
    id: str = "590e9492-cbbc-4252-8205-7eb595099b5f"
    call_id: str = "c0ffee00-0000-4000-8000-000000000001"
    tenant_id: str = "b11d749b-8eb7-4236-a068-3d94ba3860d6"
    extension: str = "200"
    direction: str = "in"
    caller_number: str = "+3228992675"
    caller_name: str = ""  # an outside party has no name: it falls back to its number
    callee_number: str = "200"
    callee_name: str = "John Doe"


def test_the_documented_example_comes_out_field_for_field() -> None:
    event = call_event(Leg(), "RINGING", 1, 1765209366386177, None)
    documented = {key: event[key] for key in EXAMPLE_1}
    assert documented == EXAMPLE_1
    assert set(event) - set(EXAMPLE_1) == {"call_id", "sequence", "type"}  # our additions
    assert event["type"] == "call"


def test_every_value_is_a_string() -> None:
    event = call_event(Leg(), "HANGUP", 3, 1765209366386177, "completed")
    assert all(isinstance(value, str) for value in event.values())
    assert (event["sequence"], event["reason"]) == ("3", "completed")


def test_reason_only_on_hangup() -> None:
    assert "reason" not in call_event(Leg(), "ACTIVE", 2, 1, None)


def test_a_summary_of_an_answered_leg() -> None:
    summary = summary_event(Leg(), 4, 1_000_000, 3_000_000, 65_500_000, "completed")
    assert summary == {
        "type": "summary", "tenant_id": Leg.tenant_id, "user_extension": "200",
        "id": Leg.id, "call_id": Leg.call_id, "sequence": "4", "direction": "in",
        "caller_number": "+3228992675", "caller_name": "+3228992675",
        "callee_number": "200", "callee_name": "John Doe", "started_at": "1000000",
        "answered_at": "3000000", "ended_at": "65500000", "duration": "62",
        "reason": "completed", "timestamp": "65500000", "held_duration": "0"}


def test_a_summary_of_a_leg_never_answered() -> None:
    summary = summary_event(Leg(), 2, 1_000_000, None, 9_000_000, "no-answer")
    assert (summary["answered_at"], summary["duration"]) == ("", "0")


def test_held_time_counts_every_hold_until_resumed_or_ended() -> None:
    held = HeldTime()
    for state, at in (("ACTIVE", 1), ("HELD", 2_000_000), ("HELD", 3_000_000),
                      ("ACTIVE", 12_000_000), ("HELD", 20_000_000)):
        held = held.after(state, at)
    summary = summary_event(Leg(), 7, 1, 1, 25_500_000, "completed", held)
    assert summary["held_duration"] == "15"  # 10 s, then 5.5 s still held at the end
