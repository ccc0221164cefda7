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


def _rate_headers(request: Request) -> dict[str, str]:
    """The RateLimit-* headers go on every answer of a rate-limited route, errors too."""
    return dict(getattr(request.state, "rate_limit_headers", {}))


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

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            422, "invalid-fields", "Some fields are missing or invalid",
            "see errors for each field", errors=field_problems(list(exc.errors())),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, f"http-{exc.status_code}",
                                str(exc.detail), str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        # Nothing a client sends should get here; if it does, say so without a stack trace.
        import structlog

        structlog.get_logger("hookswitch.api").exception("api.unexpected_error")
        return problem_response(500, "internal-error", "Internal error",
                                "the server failed to handle this request")
