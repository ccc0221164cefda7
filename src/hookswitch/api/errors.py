"""Errors of the HTTP layer itself. Like the domain's (calls/errors.py), each has a stable
``code``; its HTTP status lives only in the one table in ``api/problems.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hookswitch.calls.errors import HookswitchError


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class ApiError(HookswitchError):
    code = "api-error"
    title = "Request error"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None,
                 errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.headers = dict(headers or {})
        self.errors = errors


class Unauthorized(ApiError):
    code = "unauthorized"
    title = "Missing or invalid bearer token"

    def __init__(self, detail: str, *, token_given: bool = False) -> None:
        # RFC 6750 section 3.1: a token that was sent but is not (or no longer) valid is
        # "invalid_token", so a client knows to refresh rather than to ask for one.
        challenge = 'Bearer realm="hookswitch"' + (', error="invalid_token"'
                                                   if token_given else "")
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class RateLimited(ApiError):
    code = "rate-limited"
    title = "Too many requests"


class InvalidFields(ApiError):
    code = "invalid-fields"
    title = "Some fields are missing or invalid"

    def __init__(self, errors: list[FieldError]) -> None:
        named = "; ".join(f"{error.field}: {error.message}" for error in errors[:5])
        more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
        super().__init__(f"{named}{more}", errors=errors)


class BodyTooLarge(ApiError):
    code = "body-too-large"
    title = "Request body too large"

    def __init__(self, limit: int) -> None:
        # The connection is closed after it, so the client stops sending what nobody reads.
        super().__init__(
            f"the body is larger than the {limit} bytes this server accepts "
            "(server.max_body_bytes); a call-control body is well under 1 KiB",
            headers={"Connection": "close"},
        )


class NotFound(ApiError):
    code = "not-found"
    title = "Not found"


class MethodNotAllowed(ApiError):
    code = "method-not-allowed"
    title = "Method not allowed"


class IdempotencyKeyReused(ApiError):
    code = "idempotency-key-reused"
    title = "Idempotency-Key reused for another request"


class MalformedBody(ApiError):
    code = "malformed-body"
    title = "Malformed request body"


class InternalError(ApiError):
    code = "internal-error"
    title = "Internal error"


class NodeUnavailable(ApiError):
    """The node holding the leg is alive in the cluster but did not answer in time."""

    code = "node-unavailable"
    title = "The node holding this call leg is not answering"


class SharedStateUnavailable(ApiError):
    """A cluster node cannot reach the Redis its nodes share (an Idempotency-Key's claim)."""

    code = "shared-state-unavailable"
    title = "The cluster's shared state is not reachable"


class IdempotencyKeyInUse(ApiError):
    """Another request with this key is still being carried out (on any node)."""

    code = "idempotency-key-in-use"
    title = "Idempotency-Key in use by a request in progress"


class LegsOnDifferentNodes(ApiError):
    """Attended transfer of two legs that two nodes of a cluster hold: one switch cannot
    join calls whose media another node relays."""

    code = "legs-on-different-nodes"
    title = "The two call legs are held by different nodes"
