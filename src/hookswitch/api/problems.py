"""RFC 9457 problem details: every error the API answers, and its HTTP status.

Errors are classes with a stable ``code`` (and a title and a detail) wherever they are
raised: the call domain (calls/errors.py), the live stream (events/stream.py), the HTTP
layer (api/errors.py). Their statuses are in one table, ``STATUS``, and one function turns
any of them into an answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from hookswitch.api.errors import (
    ApiError,
    BodyTooLarge,
    FieldError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InternalError,
    InvalidFields,
    LegsOnDifferentNodes,
    MalformedBody,
    MethodNotAllowed,
    NodeUnavailable,
    NotFound,
    RateLimited,
    SharedStateUnavailable,
    Unauthorized,
)
from hookswitch.calls.errors import (
    HookswitchError,
    InvalidDestination,
    LegEnded,
    LegNotFound,
    NoRegisteredDevice,
    NotAnswered,
    NotLegOwner,
    NotOwner,
    NotParticipant,
)
from hookswitch.calls.listing import InvalidCursor
from hookswitch.events.stream import BadCursor, TooManyStreams
from hookswitch.integrations.service import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    OAuthError,
    UnsupportedGrantType,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://hookswitch.dev/problems/"

STATUS: dict[type[Exception], int] = {
    # the call domain
    NotOwner: 403,
    NotParticipant: 403,
    NotLegOwner: 403,
    LegNotFound: 404,
    NoRegisteredDevice: 409,
    NotAnswered: 409,
    LegEnded: 409,
    InvalidDestination: 422,
    InvalidCursor: 400,  # the call history's
    # the live event stream
    BadCursor: 400,
    TooManyStreams: 429,
    # the HTTP layer
    MalformedBody: 400,
    Unauthorized: 401,
    NotFound: 404,
    MethodNotAllowed: 405,
    BodyTooLarge: 413,
    InvalidFields: 422,
    IdempotencyKeyReused: 422,
    IdempotencyKeyInUse: 409,
    LegsOnDifferentNodes: 409,
    NodeUnavailable: 503,
    SharedStateUnavailable: 503,
    RateLimited: 429,
    InternalError: 500,
    # the OAuth endpoints (RFC 6749 section 5.2)
    InvalidRequest: 400,
    InvalidGrant: 400,
    UnsupportedGrantType: 400,
    InvalidClient: 401,
}



class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldProblem] | None = None


def status_of(error: HookswitchError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def message_of(error: HookswitchError) -> str:
    """The problem as one sentence for a person (the portal's pages): title and detail."""
    return f"{error.title}: {error.detail}"


def problem_body(error: HookswitchError) -> dict[str, Any]:
    fields = getattr(error, "errors", None)
    if isinstance(error, InvalidDestination):
        fields = [FieldError(error.field, error.detail)]
    problem = Problem(
        type=TYPE_BASE + error.code, title=error.title, status=status_of(error),
        detail=error.detail, code=error.code,
        errors=[FieldProblem(field=f.field, message=f.message) for f in fields]
        if fields else None,
    )
    return problem.model_dump(exclude_none=True)


def problem_response(error: HookswitchError, headers: Mapping[str, str] | None = None
                     ) -> JSONResponse:
    return JSONResponse(
        problem_body(error), status_code=status_of(error), media_type=PROBLEM_JSON,
        headers={**(headers or {}), **error.headers},
    )


def quoted(text: str, limit: int = 32) -> str:
    """Client text inside a message: quoted, and cut so a message stays a message."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def field_errors(raw_errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    """pydantic's validation errors, one per field."""
    return [
        FieldError(".".join(str(part) for part in err.get("loc", ()) if part != "body")
                   or "body", err["msg"])
        for err in raw_errors
    ]


def documented_problem(description: str,
                       headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI answer whose body is a Problem, as ``application/problem+json`` only."""
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        answer["headers"] = dict(headers)
    return answer


def _rate_headers(request: Request) -> dict[str, str]:
    """The RateLimit-* headers go on every answer of a rate-limited route, errors too."""
    return dict(getattr(request.state, "rate_limit_headers", {}))


def _from_http_exception(request: Request, exc: StarletteHTTPException) -> ApiError:
    """Starlette's own errors (routing, the body limit) as errors that say what to do."""
    path = quoted(request.url.path, 100)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        return MethodNotAllowed(f"{request.method} is not allowed on {path}; "
                                f"use {headers.get('Allow', 'another method')}",
                                headers=headers)
    if exc.status_code == 413:  # api/body_limit.py cut the body at the cap
        return BodyTooLarge(request.app.state.max_body_bytes)
    return NotFound(f"there is no {path}; the API is described at /openapi.json")


def install(app: FastAPI) -> None:
    @app.exception_handler(HookswitchError)
    async def _answer(request: Request, exc: HookswitchError) -> JSONResponse:
        return problem_response(exc, _rate_headers(request))

    @app.exception_handler(OAuthError)
    async def _oauth(request: Request, exc: OAuthError) -> JSONResponse:
        # RFC 6749's error object, not a problem document: what OAuth clients parse.
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if isinstance(exc, InvalidClient):
            headers["WWW-Authenticate"] = 'Basic realm="hookswitch"'
        return JSONResponse({"error": exc.code, "error_description": exc.detail},
                            status_code=status_of(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(InvalidFields(field_errors(list(exc.errors()))),
                                _rate_headers(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(_from_http_exception(request, exc), _rate_headers(request))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        # Nothing a client sends should get here; if it does, say so without a stack trace.
        structlog.get_logger("hookswitch.api").exception("api.unexpected_error")
        return problem_response(InternalError("the server failed to handle this request"))
