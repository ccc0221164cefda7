"""Errors of the call-control service, and the one base of every error a client can be
told about. Each has a stable ``code``; the HTTP status for a code lives only in
``api/problems.py``."""

from __future__ import annotations

from collections.abc import Mapping


class HookswitchError(Exception):
    """An error a client is told about: a stable ``code``, a ``title`` per class and a
    ``detail`` that says what was wrong and what is expected; ``headers`` for an answer that
    needs some (Retry-After)."""

    code = "error"
    title = "Error"
    headers: Mapping[str, str] = {}

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CallControlError(HookswitchError):
    code = "call-control-error"
    title = "Call control error"


class NotOwner(CallControlError):
    code = "not-owner"
    title = "The authenticated user does not own this extension"


class NotParticipant(CallControlError):
    code = "not-participant"
    title = "The authenticated user is not a participant in this call"


class LegNotFound(CallControlError):
    code = "leg-not-found"
    title = "No such call leg"


class NoRegisteredDevice(CallControlError):
    code = "no-registered-device"
    title = "The user has no registered phone to ring"


class InvalidDestination(CallControlError):
    code = "invalid-destination"
    title = "The destination cannot be called"

    def __init__(self, detail: str, field: str = "payload.destination") -> None:
        super().__init__(detail)
        self.field = field


class NotLegOwner(CallControlError):
    code = "not-leg-owner"
    title = "The call leg is another user's"


class NotAnswered(CallControlError):
    code = "not-answered"
    title = "The call leg is not answered yet"


class LegEnded(CallControlError):
    code = "ended"
    title = "The call leg has ended"
