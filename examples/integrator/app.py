"""The example integrator's HTTP side.

hookswitch calls three URLs of it (registered with the integration):
- ``POST /telephony/activate``: a user clicked Subscribe; here are that user's tokens.
- ``POST /telephony/deactivate``: the activation ended; forget the tokens.
- ``POST /telephony/events``: the call events (and summaries) of the users who activated.

The browser uses the page ``/``, with Connect (off to hookswitch's consent page with a fresh
confirmation key) and, per connected user, Call, Refresh now and Disconnect.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from . import pages
from .client import GrantRefused, HookswitchClient, HookswitchError
from .settings import Settings
from .store import KEY_LIFETIME, Connection, Store

log = logging.getLogger("integrator")

# Cookies are per host, not per port: hookswitch's portal on 127.0.0.1:8080 shares this
# browser's cookie jar with 127.0.0.1:9100, so this app's cookie names carry a prefix.
CSRF_COOKIE = "integrator_csrf"
PENDING_COOKIE = "integrator_pending"  # the confirmation key of this browser's Connect


class ActivationBody(BaseModel):
    """What hookswitch POSTs to the Activation URL when the user clicks Subscribe."""

    tenant_id: str
    user_extension: str
    confirmation_key: str
    integration: str
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    scope: str = ""


class DeactivationBody(BaseModel):
    """What hookswitch POSTs to the Deactivation URL, however the activation ended."""

    tenant_id: str
    user_extension: str
    integration: str
    reason: str  # user|admin|integrator|refresh_token_reuse|user_removed|integration_removed


class ActivationRefused(Exception):
    """An activation this app will not keep (the route answers 400, and hookswitch then
    revokes the tokens and sends the browser back with ``error=activation_failed``)."""


class Integrator:
    """The connection lifecycle, apart from HTTP: what the routes below call."""

    def __init__(self, settings: Settings, store: Store, client: HookswitchClient) -> None:
        self.settings = settings
        self.store = store
        self.client = client

    def portal_url(self, confirmation_key: str) -> str:
        """hookswitch's consent page for this integration; it sends the browser back to
        this app's ``/`` (an allowed redirect URL of the integration) when done."""
        query = urlencode({"confirmation_key": confirmation_key,
                           "redirect_url": self.settings.home_url})
        return (f"{self.settings.hookswitch_url}/portal/activate/"
                f"{quote(self.settings.slug, safe='')}?{query}")

    def activate(self, body: ActivationBody) -> None:
        """Keep the tokens of an activation that answers a Connect of this app."""
        if body.integration != self.settings.slug:
            raise ActivationRefused(f"this app is integration {self.settings.slug!r}")
        if body.token_type.lower() != "bearer":
            raise ActivationRefused("token_type must be Bearer")
        # Single use: a replayed activation body (or one for a key this app never gave a
        # browser) must not plant tokens here.
        if not self.store.take_key(body.confirmation_key):
            raise ActivationRefused("unknown, expired or already used confirmation_key")
        now = time.time()
        self.store.connect(Connection(
            tenant_id=body.tenant_id, user_extension=body.user_extension,
            confirmation_key=body.confirmation_key, access_token=body.access_token,
            refresh_token=body.refresh_token, expires_at=now + body.expires_in,
            scope=body.scope, connected_at=now))
        log.info("activation: %s@%s connected", body.user_extension, body.tenant_id)

    def returned(self, error: str | None, pending_key: str | None) -> pages.Message | None:
        """What to tell a browser back from hookswitch (``?error=`` or not)."""
        user = self.store.activated_by(pending_key) if pending_key else None
        if error is not None and user is not None:
            # This app answered the activation, but hookswitch gave up on it (a timeout on
            # its side) and revoked the tokens: do not keep them.
            connection = self.store.connection(user)
            if connection is not None and connection.confirmation_key == pending_key:
                self.store.drop(user, "activation_failed", only=connection)
        return pages.return_message(error, user)

    async def access_token(self, connection: Connection) -> str:
        """The connection's access token, refreshed first when it has less than
        ``refresh_margin`` seconds left."""
        async with connection.refresh_lock:
            if connection.expires_at - time.time() <= self.settings.refresh_margin:
                await self._rotate(connection)
            return connection.access_token

    async def refresh(self, connection: Connection) -> None:
        async with connection.refresh_lock:
            await self._rotate(connection)

    async def _rotate(self, connection: Connection) -> None:
        """Trade the refresh token for a new pair (the caller holds ``refresh_lock``, so
        no two refreshes use the same refresh token). The old refresh token is dead
        from now on: using it again would end the activation."""
        try:
            tokens = await self.client.refresh(connection.refresh_token)
        except GrantRefused:
            self.store.drop(connection.user, "invalid_grant", only=connection)
            log.info("refresh refused: %s@%s dropped", connection.user_extension,
                     connection.tenant_id)
            raise
        connection.rotate(tokens.access_token, tokens.refresh_token, tokens.expires_in,
                          tokens.scope, time.time())
        log.info("refreshed: %s@%s", connection.user_extension, connection.tenant_id)

    async def call(self, connection: Connection, destination: str) -> None:
        try:
            token = await self.access_token(connection)
            answer = await self.client.click_to_dial(
                token, connection.tenant_id, connection.user_extension, destination)
        except GrantRefused:
            return  # the connection is gone; the page says why
        except HookswitchError as error:
            connection.notice = f"Call to {destination}: {error}"
            return
        status = "" if answer.status == 202 else f"{answer.status} "
        connection.notice = f"Call to {destination}: {status}{answer.detail}"

    async def refresh_now(self, connection: Connection) -> None:
        try:
            await self.refresh(connection)
        except GrantRefused:
            return
        except HookswitchError as error:
            connection.notice = f"Refresh failed: {error}"
            return
        connection.notice = "Refreshed: a new access token and a new refresh token."

    async def disconnect(self, connection: Connection) -> None:
        """Revoke the refresh token (which ends the activation at hookswitch), then forget
        the connection here even if hookswitch could not be told."""
        async with connection.refresh_lock:
            try:
                await self.client.revoke(connection.refresh_token)
                reason = "integrator"
            except HookswitchError as error:
                log.warning("revoke failed: %s", error)
                reason = "revoke_failed"
            self.store.drop(connection.user, reason, only=connection)


def _integrator(request: Request) -> Integrator:
    integrator: Integrator = request.app.state.integrator
    return integrator


IntegratorDep = Annotated[Integrator, Depends(_integrator)]

router = APIRouter()


# -- what hookswitch calls --------------------------------------------------------------

def require_headers(request: Request, expected: Mapping[str, str]) -> None:
    """401 unless every expected static header came with its value."""
    for name, value in expected.items():
        if not hmac.compare_digest(request.headers.get(name, "").encode(), value.encode()):
            raise HTTPException(401, f"missing or wrong {name} header")


Model = TypeVar("Model", bound=BaseModel)


async def read_body(request: Request, model: type[Model]) -> Model:
    """The JSON body as ``model``, or 400."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        fields = ", ".join(".".join(map(str, e["loc"])) or "body" for e in error.errors())
        raise HTTPException(400, f"bad body: {fields}") from None


@router.post("/telephony/activate")
async def activation_url(request: Request, integrator: IntegratorDep) -> JSONResponse:
    require_headers(request, integrator.settings.validation_headers)
    try:
        integrator.activate(await read_body(request, ActivationBody))
    except ActivationRefused as refused:
        raise HTTPException(400, str(refused)) from None
    return JSONResponse({"connected": True})


@router.post("/telephony/deactivate")
async def deactivation_url(request: Request, integrator: IntegratorDep) -> JSONResponse:
    require_headers(request, integrator.settings.validation_headers)
    body = await read_body(request, DeactivationBody)
    if body.integration != integrator.settings.slug:
        raise HTTPException(400, f"this app is integration {integrator.settings.slug!r}")
    # Retries may deliver it twice, or after Disconnect here: forgetting is idempotent.
    integrator.store.drop((body.tenant_id, body.user_extension), body.reason)
    log.info("deactivation: %s@%s (%s)", body.user_extension, body.tenant_id, body.reason)
    return JSONResponse({"disconnected": True})


@router.post("/telephony/events")
async def events_url(request: Request, integrator: IntegratorDep) -> Response:
    settings = integrator.settings
    require_headers(request, settings.expected_webhook_headers)
    body = await request.body()
    if settings.webhook_secret is not None:
        try:
            Webhook(settings.webhook_secret).verify(body, dict(request.headers),
                                                     json_parse=False)
        except (WebhookVerificationError, ValueError):  # ValueError: mangled base64 or text
            raise HTTPException(401, "the webhook signature does not verify") from None
    webhook_id = request.headers.get("webhook-id")
    event = _event(body)
    if not webhook_id or event is None:
        raise HTTPException(400, "not an event: needs webhook-id and a JSON object body")
    # 200 for a redelivery too: at-least-once delivery repeats events, and anything but
    # a 2xx makes hookswitch try again.
    integrator.store.add_event(webhook_id, event)
    return Response(status_code=200)


def _event(body: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or not all(
            isinstance(event.get(name), str) for name in ("tenant_id", "user_extension")):
        return None
    return event


# -- the page ---------------------------------------------------------------------------

async def form_fields(request: Request) -> dict[str, str]:
    """A posted form's fields, once its CSRF token matches this browser's cookie (this
    demo has no login; a CRM's own session and CSRF protection would take its place)."""
    fields = dict(parse_qsl((await request.body()).decode(errors="replace"),
                            keep_blank_values=True))
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), fields.get("csrf", "").encode()):
        raise HTTPException(403, "stale form: reload the page")
    return fields


def back_home() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, integrator: IntegratorDep,
               error: str | None = None) -> HTMLResponse:
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)
    pending_key = request.cookies.get(PENDING_COOKIE)
    message = integrator.returned(error, pending_key)
    store = integrator.store
    response = HTMLResponse(pages.home(
        settings=integrator.settings, csrf=csrf, message=message,
        connections=store.connections(), ended=store.ended(), events=store.events(),
        now=time.time()))
    # Loopback HTTP in the demo; behind HTTPS add secure=True.
    response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict")
    if pending_key and (error is not None or store.activated_by(pending_key)):
        response.delete_cookie(PENDING_COOKIE)
    return response


@router.post("/connect")
async def connect(request: Request, integrator: IntegratorDep) -> RedirectResponse:
    await form_fields(request)
    key = integrator.store.issue_key()
    response = RedirectResponse(integrator.portal_url(key), status_code=303)
    # In a CRM this key is bound to the CRM user who clicked; here, to the browser.
    response.set_cookie(PENDING_COOKIE, key, max_age=int(KEY_LIFETIME), httponly=True,
                        samesite="lax")
    return response


async def posted_to(request: Request, integrator: Integrator, tenant_id: str,
                   user_extension: str) -> tuple[dict[str, str], Connection | None]:
    """A connection's form: its fields, and the connection (None once it is gone)."""
    fields = await form_fields(request)
    return fields, integrator.store.connection((tenant_id, user_extension))


@router.post("/connections/{tenant_id}/{user_extension}/call")
async def call(request: Request, integrator: IntegratorDep, tenant_id: str,
               user_extension: str) -> RedirectResponse:
    fields, connection = await posted_to(request, integrator, tenant_id, user_extension)
    destination = fields.get("destination", "").strip()
    if connection is not None and destination:
        await integrator.call(connection, destination)
    return back_home()


@router.post("/connections/{tenant_id}/{user_extension}/refresh")
async def refresh(request: Request, integrator: IntegratorDep, tenant_id: str,
                  user_extension: str) -> RedirectResponse:
    _, connection = await posted_to(request, integrator, tenant_id, user_extension)
    if connection is not None:
        await integrator.refresh_now(connection)
    return back_home()


@router.post("/connections/{tenant_id}/{user_extension}/disconnect")
async def disconnect(request: Request, integrator: IntegratorDep, tenant_id: str,
                     user_extension: str) -> RedirectResponse:
    _, connection = await posted_to(request, integrator, tenant_id, user_extension)
    if connection is not None:
        await integrator.disconnect(connection)
    return back_home()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    client = HookswitchClient(settings.hookswitch_url, settings.client_id,
                              settings.client_secret)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()

    # No /docs: nothing here is an API for people, and /docs would load from a CDN.
    app = FastAPI(title="hookswitch example integrator", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.integrator = Integrator(settings, Store(events_kept=settings.events_kept),
                                      client)
    app.include_router(router)
    return app
