"""The integrations' OAuth 2.0 endpoints: token (refresh grant, rotating), revocation
(RFC 7009) and introspection (RFC 7662). Form-encoded requests; the client authenticates
with HTTP Basic or with ``client_id``/``client_secret`` fields (RFC 6749 section 2.3.1);
errors are RFC 6749 error objects.

Why not Authlib's server: its grant hooks (``authenticate_refresh_token``,
``save_token``, ``revoke_old_credential``) are synchronous and run inside its own request
flow, so they would either block the event loop on the database or need a second, sync
database stack in a thread; and the two rules that matter here (a retry within the grace
window gets the same pair, any other dead token revokes the family) sit in the middle of
that flow. The grant itself is a few dozen lines (integrations/tokens.py, commands.py).
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Form, Header
from fastapi.responses import JSONResponse

from hookswitch.api.services import ServicesDep
from hookswitch.integrations.service import (
    Integration,
    InvalidClient,
    InvalidRequest,
    UnsupportedGrantType,
)

router = APIRouter(tags=["integrations (OAuth 2.0)"])

# Token answers hold credentials: never cached (RFC 6749 section 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

FormField = Annotated[str | None, Form()]


def _oauth_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
    }}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _oauth_error("invalid_request, invalid_grant or unsupported_grant_type"),
    401: _oauth_error("invalid_client"),
}


def _basic(authorization: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic`` as RFC 6749 2.3.1 has it: form-urlencoded id and secret."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("the Basic credentials are not base64 of id:secret") from None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        raise InvalidClient("the Basic credentials are not base64 of id:secret")
    return unquote(client_id), unquote(secret)


async def _client(services: ServicesDep, authorization: str | None, client_id: str | None,
                  client_secret: str | None) -> Integration:
    basic = _basic(authorization)
    if basic is not None and (client_id or client_secret) and client_id != basic[0]:
        raise InvalidRequest("use one way of client authentication: Basic or the form")
    if basic is not None:
        client_id, client_secret = basic
    if not client_id:
        raise InvalidClient("no client authentication: send HTTP Basic with client_id and "
                            "client_secret, or both as form fields")
    return await services.integrations.authenticate_client(client_id, client_secret)


@router.post("/oauth/token", summary="A new access token and refresh token (refresh grant)",
             responses={200: {"description": "the new pair; the used refresh token is dead"},
                        **ERRORS})
async def token(
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    grant_type: FormField = None,
    refresh_token: FormField = None,
    client_id: FormField = None,
    client_secret: FormField = None,
) -> JSONResponse:
    integration = await _client(services, authorization, client_id, client_secret)
    if not grant_type:
        raise InvalidRequest("grant_type is missing; use grant_type=refresh_token")
    if grant_type != "refresh_token":
        raise UnsupportedGrantType(f"grant_type {grant_type[:40]!r} is not supported; "
                                   "use refresh_token")
    if not refresh_token:
        raise InvalidRequest("refresh_token is missing")
    pair = await services.integrations.refresh(integration, refresh_token)
    return JSONResponse(pair.answer(), headers=NO_STORE)


@router.post("/oauth/revoke", summary="Revoke a token (RFC 7009)",
             responses={200: {"description": "revoked, or unknown (the same answer)"},
                        **ERRORS})
async def revoke(
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    token: FormField = None,
    token_type_hint: FormField = None,
    client_id: FormField = None,
    client_secret: FormField = None,
) -> JSONResponse:
    integration = await _client(services, authorization, client_id, client_secret)
    if not token:
        raise InvalidRequest("token is missing")
    del token_type_hint  # both kinds are looked up; the hint changes nothing
    await services.integrations.revoke(integration, token)
    return JSONResponse({}, headers=NO_STORE)


@router.post("/oauth/introspect", summary="What a token is (RFC 7662)",
             responses={200: {"description": "{active: true, ...} or {active: false}"},
                        **ERRORS})
async def introspect(
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    token: FormField = None,
    token_type_hint: FormField = None,
    client_id: FormField = None,
    client_secret: FormField = None,
) -> JSONResponse:
    integration = await _client(services, authorization, client_id, client_secret)
    if not token:
        raise InvalidRequest("token is missing")
    del token_type_hint
    return JSONResponse(await services.integrations.introspect(integration, token),
                        headers=NO_STORE)
