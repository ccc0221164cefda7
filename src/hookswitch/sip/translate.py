"""The one place where sippy's events and messages are read and turned into our terms."""

from __future__ import annotations

from typing import Any

from sippy.CCEvents import CCEventFail

from hookswitch.calls.leg import HangupReason

# RFC 3261 21.4/21.6 refusals and what a user would call them.
_FAILURE_REASONS: dict[int, HangupReason] = {
    486: HangupReason.BUSY,
    600: HangupReason.BUSY,
    603: HangupReason.REJECTED,
    403: HangupReason.REJECTED,
    408: HangupReason.NO_ANSWER,
    480: HangupReason.UNAVAILABLE,
    404: HangupReason.UNAVAILABLE,
    410: HangupReason.UNAVAILABLE,
    604: HangupReason.UNAVAILABLE,
    487: HangupReason.CANCELLED,
}


def reason_for_status(status: int) -> HangupReason:
    if status in _FAILURE_REASONS:
        return _FAILURE_REASONS[status]
    if status >= 500:
        return HangupReason.FAILED
    return HangupReason.REJECTED


def failure_status(event: Any) -> int:
    """The SIP status a CCEventFail carries (sippy puts (code, reason) in its data)."""
    if isinstance(event, CCEventFail):
        data = event.getData()
        if data and isinstance(data[0], int):
            return data[0]
    return 500


def event_body(event: Any) -> Any:
    """The SDP body of a ring/connect/update event, if any (sippy: data = (code, reason, body))."""
    data = event.getData()
    if isinstance(data, tuple) and len(data) >= 3:
        return data[2]
    return None
