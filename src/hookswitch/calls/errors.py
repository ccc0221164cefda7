"""Errors of the call-control service. Each has a stable ``code``; the HTTP status for a
code lives only in ``api/problems.py``."""

from __future__ import annotations


class CallControlError(Exception):
    code = "call-control-error"
    title = "Call control error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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
