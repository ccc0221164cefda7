"""The user portal's pages: login, the consent to an integration, the integrations list
(the Calls and History pages: web/calls.py).

Routes are thin: they check the session and the CSRF token, call the same services as the
API (integrations/service.py), and render a template. Nothing from a CDN; the only
JavaScript is the vendored htmx of the Calls page, from static files (the CSP allows no
inline script).
"""

from __future__ import annotations

import asyncio
import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from hookswitch.api.services import ServicesDep
from hookswitch.directory.credentials import token_digest
from hookswitch.directory.logins import login_candidate
from hookswitch.directory.passwords import secret_matches
from hookswitch.directory.sessions import (
    CloseSession,
    OpenSession,
    WebSession,
    new_session_secret,
)
from hookswitch.integrations.service import ActivationResult, Integration, tenant_name
from hookswitch.web.session import (
    LOGIN_COOKIE,
    PATH,
    SESSION_COOKIE,
    MaybeSession,
    new_login_token,
    same,
    set_cookie,
)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)

MAX_KEY = 200
FormText = Annotated[str, Form(max_length=2000)]


def page(request: Request, template: str, status: int = 200, **context: object) -> Response:
    response = templates.TemplateResponse(request, template, context, status_code=status)
    # The consent page must never be framed (clickjacking), and its URL (with the
    # confirmation key) must not leak in a Referer.
    response.headers.update({
        "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                   "frame-ancestors 'none'; base-uri 'none'",
        "Cache-Control": "no-store"})
    return response


def error_page(request: Request, status: int, title: str, detail: str,
               session: WebSession | None = None) -> Response:
    return page(request, "error.html", status, title=title, detail=detail, session=session)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _local(next_url: str) -> str:
    """Only a page of the portal itself: no open redirect through ``next``."""
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or not parts.path.startswith(PATH + "/"):
        return PATH + "/"
    return next_url


def _with_error(url: str, error: str) -> str:
    return url + ("&" if "?" in url else "?") + urlencode({"error": error})


# --- login -----------------------------------------------------------------------------


@router.get("/portal/login")
async def login_form(request: Request, next: str = PATH + "/") -> Response:
    token = new_login_token()
    response = page(request, "login.html", csrf_token=token, next=_local(next), user="",
                    error=None, session=None)
    set_cookie(request, response, LOGIN_COOKIE, token, 600)
    return response


@router.post("/portal/login")
async def login(request: Request, services: ServicesDep, user: FormText, password: FormText,
                csrf_token: FormText = "", next: FormText = PATH + "/") -> Response:
    if not same(csrf_token, request.cookies.get(LOGIN_COOKIE)):
        return error_page(request, 403, "Log in again",
                          "This login form expired or did not come from this site. "
                          "Open the login page again.")
    source = request.client.host if request.client else "?"
    wait = await services.login_throttle.wait_seconds(user, source)
    if wait:
        return _login_again(request, next, user, 429,
                            "Too many failed logins for this user from here. Wait "
                            f"{wait} seconds, then try again.")
    async with services.sessions() as db:
        candidate = await login_candidate(db, user)
    matches = await asyncio.to_thread(
        secret_matches, candidate.password_hash if candidate else None, password)
    if candidate is None or not matches:
        await services.login_throttle.failed(user, source)
        return _login_again(request, next, user, 401,
                            "Wrong user or password.")
    cookie = new_session_secret()
    await services.writer.call(OpenSession(
        token_digest(cookie), candidate.principal.user_id, new_session_secret(),
        datetime.now(UTC), services.session_ttl))
    response = see_other(_local(next))
    set_cookie(request, response, SESSION_COOKIE, cookie,
               int(services.session_ttl.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path=PATH)
    return response


def _login_again(request: Request, next_url: str, user: str, status: int,
                 error: str) -> Response:
    token = new_login_token()
    response = page(request, "login.html", status, csrf_token=token, next=_local(next_url),
                    user=user, error=error, session=None)
    set_cookie(request, response, LOGIN_COOKIE, token, 600)
    return response


@router.post("/portal/logout")
async def logout(request: Request, services: ServicesDep, session: MaybeSession,
                 csrf_token: FormText = "") -> Response:
    if session is None:
        return see_other(PATH + "/login")
    if not same(csrf_token, session.csrf_token):
        return error_page(request, 403, "Not logged out",
                          "This form did not come from this site.", session)
    await services.writer.call(CloseSession(token_digest(
        request.cookies.get(SESSION_COOKIE, ""))))
    response = see_other(PATH + "/login")
    response.delete_cookie(SESSION_COOKIE, path=PATH)
    return response


# --- consent ---------------------------------------------------------------------------


async def _consent_target(request: Request, services: ServicesDep, slug: str,
                          confirmation_key: str, redirect_url: str,
                          session: WebSession | None) -> Integration | Response:
    """The integration, or the error page that says why there is none to consent to."""
    integration = await services.integrations.by_slug(slug)
    if integration is None:
        return error_page(request, 404, "No such application",
                          f"No application called {slug[:63]!r} can be connected here.",
                          session)
    if not redirect_url or not integration.allows_redirect(redirect_url):
        return error_page(request, 400, "This link is not valid",
                          f"{integration.name} asked to send you back to an address it did "
                          "not register. Nothing was connected; go back to the application "
                          "and try again.", session)
    if not confirmation_key or len(confirmation_key) > MAX_KEY:
        return error_page(request, 400, "This link is not valid",
                          f"The link from {integration.name} has no confirmation key. "
                          "Nothing was connected; go back to the application and try again.",
                          session)
    return integration


@router.get("/portal/activate/{slug}")
async def consent(request: Request, services: ServicesDep, session: MaybeSession, slug: str,
                  confirmation_key: str = "", redirect_url: str = "") -> Response:
    target = await _consent_target(request, services, slug, confirmation_key, redirect_url,
                                   session)
    if isinstance(target, Response):
        return target
    if session is None:
        here = request.url.path + "?" + request.url.query
        return see_other(PATH + "/login?" + urlencode({"next": here}))
    return page(request, "consent.html", integration=target, session=session,
                tenant=await tenant_name(services.sessions, session.principal.tenant_id),
                confirmation_key=confirmation_key, redirect_url=redirect_url)


@router.post("/portal/activate/{slug}")
async def decide(request: Request, services: ServicesDep, session: MaybeSession, slug: str,
                 confirmation_key: FormText = "", redirect_url: FormText = "",
                 decision: FormText = "", csrf_token: FormText = "") -> Response:
    if session is None:
        return see_other(PATH + "/login")
    if not same(csrf_token, session.csrf_token):
        return error_page(request, 403, "Nothing was connected",
                          "This form did not come from this site.", session)
    target = await _consent_target(request, services, slug, confirmation_key, redirect_url,
                                   session)
    if isinstance(target, Response):
        return target
    if decision != "subscribe":
        return see_other(_with_error(redirect_url, "access_denied"))
    result = await services.integrations.subscribe(target, session.principal,
                                                   confirmation_key)
    if result is ActivationResult.REPLAYED:
        return error_page(request, 403, "This consent was given already",
                          f"This link from {target.name} was used already. Go back to the "
                          "application and start again.", session)
    if result is ActivationResult.FAILED:
        return see_other(_with_error(redirect_url, "activation_failed"))
    return see_other(redirect_url)


# --- the user's integrations --------------------------------------------------------------


@router.get("/portal/integrations")
async def integrations(request: Request, services: ServicesDep,
                       session: MaybeSession) -> Response:
    if session is None:
        return see_other(PATH + "/login?" + urlencode({"next": PATH + "/integrations"}))
    connections = await services.integrations.connections(session.principal.user_id)
    return page(request, "integrations.html", session=session, connections=connections)


@router.post("/portal/integrations/{activation_id}/disconnect")
async def disconnect(request: Request, services: ServicesDep, session: MaybeSession,
                     activation_id: str, csrf_token: FormText = "") -> Response:
    if session is None:
        return see_other(PATH + "/login")
    if not same(csrf_token, session.csrf_token):
        return error_page(request, 403, "Nothing was disconnected",
                          "This form did not come from this site.", session)
    await services.integrations.disconnect(session.principal, activation_id[:64])
    return see_other(PATH + "/integrations")


@router.get("/portal/logos/{slug}")
async def logo(services: ServicesDep, slug: str) -> Response:
    integration = await services.integrations.by_slug(slug)
    path = Path(integration.logo) if integration and integration.logo else None
    if path is None or not path.is_file() or path.stat().st_size > 256 * 1024:
        return Response(status_code=404)
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if not media_type.startswith("image/"):
        return Response(status_code=404)
    return FileResponse(path, media_type=media_type,
                        headers={"Content-Security-Policy": "default-src 'none'; "
                                 "style-src 'unsafe-inline'", "Cache-Control": "max-age=300"})

