"""RFC 9457 problem details: every error the API answers, and its HTTP status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from hookswitch.api.body import BodyError
from hookswitch.api.idempotency import IdempotencyKeyReused
from hookswitch.calls.errors import (
    CallControlError,
    InvalidDestination,
    LegNotFound,
    NoRegisteredDevice,
    NotOwner,
    NotParticipant,
)
from hookswitch.events.stream import BadCursor, StreamError, TooManyStreams

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://hookswitch.dev/problems/"


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


class ApiProblem(Exception):
    """An HTTP-level problem raised by the API layer itself (auth, limits, body)."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        errors: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


STATUS_BY_ERROR: dict[type[CallControlError], int] = {
    NotOwner: 403,
    NotParticipant: 403,
    LegNotFound: 404,
    NoRegisteredDevice: 409,
    InvalidDestination: 422,
}


STATUS_BY_STREAM_ERROR: dict[type[StreamError], int] = {
    BadCursor: 400,
    TooManyStreams: 429,
}


def quoted(text: str, limit: int = 32) -> str:
    """Client text inside a message: quoted, and cut so a message stays a message."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def body_too_large(limit: int) -> ApiProblem:
    """413, for a declared length over the cap and for a body cut at it while read. The
    connection is closed after it, so the client stops sending what nobody will read."""
    return ApiProblem(
        413, "body-too-large", "Request body too large",
        f"the body is larger than the {limit} bytes this server accepts "
        "(server.max_body_bytes); a call-control body is well under 1 KiB",
        headers={"Connection": "close"},
    )


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


def problem_body(
    status: int, code: str, title: str, detail: str, errors: list[FieldProblem] | None = None
) -> dict[str, Any]:
    problem = Problem(type=TYPE_BASE + code, title=title, status=status, detail=detail,
                      code=code, errors=errors)
    return problem.model_dump(exclude_none=True)


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    errors: list[FieldProblem] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, code, title, detail, errors), status_code=status, headers=headers,
        media_type=PROBLEM_JSON,
    )


def from_domain(error: CallControlError) -> ApiProblem:
    status = STATUS_BY_ERROR.get(type(error), 400)
    errors = None
    if isinstance(error, InvalidDestination):
        errors = [FieldProblem(field=error.field, message=error.detail)]
    return ApiProblem(status, error.code, error.title, error.detail, errors=errors)


def field_problems(raw_errors: Sequence[Mapping[str, Any]]) -> list[FieldProblem]:
    problems = []
    for err in raw_errors:
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body",)]
        problems.append(FieldProblem(field=".".join(loc) or "body", message=err["msg"]))
    return problems


def invalid_fields(errors: list[FieldProblem]) -> ApiProblem:
    """422 listing each field problem, in ``errors`` and (shortened) in the detail."""
    named = "; ".join(f"{error.field}: {error.message}" for error in errors[:5])
    more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
    return ApiProblem(422, "invalid-fields", "Some fields are missing or invalid",
                      f"{named}{more}", errors=errors)


def _rate_headers(request: Request) -> dict[str, str]:
    """The RateLimit-* headers go on every answer of a rate-limited route, errors too."""
    return dict(getattr(request.state, "rate_limit_headers", {}))


def _from_http_exception(request: Request, exc: StarletteHTTPException) -> ApiProblem:
    """Starlette's own errors (routing, the body limit) as problems that say what to do."""
    path = quoted(request.url.path, 100)
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        return ApiProblem(404, "not-found", "Not found",
                          f"there is no {path}; the API is described at /openapi.json")
    if exc.status_code == 405:
        return ApiProblem(405, "method-not-allowed", "Method not allowed",
                          f"{request.method} is not allowed on {path}; "
                          f"use {headers.get('Allow', 'another method')}", headers=headers)
    if exc.status_code == 413:  # api/body_limit.py cut the body at the cap
        return body_too_large(request.app.state.max_body_bytes)
    return ApiProblem(exc.status_code, f"http-{exc.status_code}", str(exc.detail),
                      str(exc.detail), headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.status, exc.code, exc.title, exc.detail,
                                {**_rate_headers(request), **exc.headers}, exc.errors)

    @app.exception_handler(CallControlError)
    async def _domain(request: Request, exc: CallControlError) -> JSONResponse:
        problem = from_domain(exc)
        return problem_response(problem.status, problem.code, problem.title, problem.detail,
                                _rate_headers(request), problem.errors)

    @app.exception_handler(StreamError)
    async def _stream(_: Request, exc: StreamError) -> JSONResponse:
        status = STATUS_BY_STREAM_ERROR.get(type(exc), 400)
        headers = {"Retry-After": "5"} if status == 429 else None
        return problem_response(status, exc.code, exc.title, exc.detail, headers)

    @app.exception_handler(BodyError)
    async def _body(request: Request, exc: BodyError) -> JSONResponse:
        return problem_response(400, exc.code, "Malformed request body", str(exc),
                                _rate_headers(request))

    @app.exception_handler(IdempotencyKeyReused)
    async def _key_reused(request: Request, exc: IdempotencyKeyReused) -> JSONResponse:
        return problem_response(422, exc.code, "Idempotency-Key reused for another request",
                                str(exc), _rate_headers(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = invalid_fields(field_problems(list(exc.errors())))
        return problem_response(problem.status, problem.code, problem.title, problem.detail,
                                _rate_headers(request), problem.errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        problem = _from_http_exception(request, exc)
        return problem_response(problem.status, problem.code, problem.title, problem.detail,
                                {**_rate_headers(request), **problem.headers})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        # Nothing a client sends should get here; if it does, say so without a stack trace.
        import structlog

        structlog.get_logger("hookswitch.api").exception("api.unexpected_error")
        return problem_response(500, "internal-error", "Internal error",
                                "the server failed to handle this request")
