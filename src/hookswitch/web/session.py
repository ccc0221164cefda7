"""The portal's login session: a cookie, a CSRF token, and who is logged in.

- ``hs_session``: a random value (its SHA-256 is stored), HttpOnly, SameSite=Lax, scoped
  to /portal; Secure when the portal is reached over HTTPS.
- Every state-changing form carries the session's CSRF token; the login form, before any
  session exists, a token that must match the ``hs_login`` cookie (double submit), so
  nobody can log a browser in as someone else.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response

from hookswitch.api.services import ServicesDep
from hookswitch.directory.sessions import WebSession, session_for

SESSION_COOKIE = "hs_session"
LOGIN_COOKIE = "hs_login"
PATH = "/portal"


async def current_session(request: Request, services: ServicesDep) -> WebSession | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 200:
        return None
    async with services.sessions() as db:
        return await session_for(db, cookie)


MaybeSession = Annotated[WebSession | None, Depends(current_session)]


def same(left: str | None, right: str | None) -> bool:
    return bool(left) and bool(right) and hmac.compare_digest(str(left), str(right))


def set_cookie(request: Request, response: Response, name: str, value: str,
               max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")


def new_login_token() -> str:
    return secrets.token_urlsafe(24)
