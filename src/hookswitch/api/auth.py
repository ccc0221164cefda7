"""Bearer-token authentication, as a declared dependency (so OpenAPI shows it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hookswitch.api.problems import ApiProblem, documented_problem
from hookswitch.calls.policy import Principal
from hookswitch.directory.tokens import principal_for

bearer = HTTPBearer(auto_error=False, description="a user's API token")


UNAUTHORIZED_ANSWER = documented_problem(
    "missing, unknown, revoked or expired token",
    {"WWW-Authenticate": {"description": "the Bearer scheme", "required": True,
                          "schema": {"type": "string"}}},
)


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "unauthorized", "Missing or invalid bearer token", detail,
                      headers={"WWW-Authenticate": 'Bearer realm="hookswitch"'})


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("send Authorization: Bearer <token>")
    async with request.app.state.services.sessions() as session:
        principal = await principal_for(session, credentials.credentials)
    if principal is None:
        raise _unauthorized("the token is unknown, revoked or expired")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticated)]
