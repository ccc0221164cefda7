"""Bearer-token authentication, as a declared dependency (so OpenAPI shows it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hookswitch.api.errors import Unauthorized
from hookswitch.api.problems import documented_problem
from hookswitch.api.services import ServicesDep
from hookswitch.calls.policy import Principal
from hookswitch.directory.tokens import principal_for

bearer = HTTPBearer(auto_error=False, description="a user's API token")


UNAUTHORIZED_ANSWER = documented_problem(
    "missing, unknown, revoked or expired token",
    {"WWW-Authenticate": {"description": "the Bearer scheme", "required": True,
                          "schema": {"type": "string"}}},
)


async def authenticated(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send Authorization: Bearer <token>")
    async with services.sessions() as session:
        principal = await principal_for(session, credentials.credentials)
    if principal is None:
        raise Unauthorized("the token is unknown, revoked or expired", token_given=True)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticated)]
