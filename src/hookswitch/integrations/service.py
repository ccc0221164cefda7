"""The integrations' operations, for the portal and the OAuth endpoints: reads here, writes
through the one writer (commands.py), the integrator's Activation URL called here.

Argon2 checks (client secrets, passwords) cost tens of milliseconds of CPU: they run in a
thread so that no request holds the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import aiohttp
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.calls.errors import HookswitchError
from hookswitch.calls.policy import Principal
from hookswitch.config import ServerSection
from hookswitch.directory.credentials import token_digest
from hookswitch.directory.models import ApiTokenRow, TenantRow, UserRow
from hookswitch.directory.passwords import secret_matches
from hookswitch.integrations.activation import ActivationState, EndReason
from hookswitch.integrations.commands import (
    BeginActivation,
    CompleteActivation,
    EndActivations,
    IssuedTokens,
    RefreshGrant,
    RefreshOutcome,
    RevokeToken,
)
from hookswitch.integrations.models import ActivationRow, IntegrationRow, RefreshTokenRow
from hookswitch.integrations.tokens import SCOPE, Decision, TokenPair, new_pair, seal, unseal
from hookswitch.store.db import as_utc
from hookswitch.store.writes import Writer

log = structlog.get_logger("hookswitch.integrations")


class OAuthError(HookswitchError):
    """An error of the OAuth endpoints, answered as RFC 6749 says (``error`` and
    ``error_description``), not as a problem document."""

    title = "OAuth error"


class InvalidClient(OAuthError):
    code = "invalid_client"


class InvalidGrant(OAuthError):
    code = "invalid_grant"


class InvalidRequest(OAuthError):
    code = "invalid_request"


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"


@dataclass(frozen=True, slots=True)
class Integration:
    id: str
    slug: str
    name: str
    client_id: str
    activation_url: str
    redirect_urls: tuple[str, ...]
    validation_headers: dict[str, str]
    logo: str | None

    @classmethod
    def of(cls, row: IntegrationRow) -> Integration:
        return cls(row.id, row.slug, row.name, row.client_id, row.activation_url,
                   tuple(row.redirect_urls or ()), dict(row.validation_headers or {}),
                   row.logo)

    def allows_redirect(self, url: str) -> bool:
        """An allowed prefix, ending at a path boundary: "http://x:9100" must not let
        "http://x:9100.evil.test/" through (no open redirect)."""
        for prefix in self.redirect_urls:
            if url == prefix or (url.startswith(prefix) and (
                    prefix.endswith("/") or url[len(prefix)] in "/?#")):
                return True
        return False


class ActivationResult(StrEnum):
    ACTIVATED = "activated"
    FAILED = "activation_failed"
    REPLAYED = "replayed"  # the consent form had been used already


@dataclass(frozen=True, slots=True)
class Connection:
    """One of a user's active integrations, for the portal."""

    activation_id: str
    integration: str
    name: str
    since: datetime


class Integrations:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], writer: Writer,
                 settings: ServerSection) -> None:
        self._sessions = sessions
        self._writer = writer
        self._settings = settings

    # --- reads --------------------------------------------------------------------------

    async def by_slug(self, slug: str) -> Integration | None:
        async with self._sessions() as session:
            row = await session.scalar(select(IntegrationRow).where(
                IntegrationRow.slug == slug, IntegrationRow.removed_at.is_(None)))
        return Integration.of(row) if row is not None else None

    async def authenticate_client(self, client_id: str | None,
                                  client_secret: str | None) -> Integration:
        """The integration whose credentials these are; ``InvalidClient`` otherwise, after
        the same work as for a real client (no way to tell which part was wrong)."""
        row = None
        if client_id:
            async with self._sessions() as session:
                row = await session.scalar(select(IntegrationRow).where(
                    IntegrationRow.client_id == client_id,
                    IntegrationRow.removed_at.is_(None)))
        ok = await asyncio.to_thread(secret_matches, row.client_secret_hash if row else None,
                                     client_secret or "")
        if row is None or not ok:
            raise InvalidClient("client authentication failed: unknown client_id or wrong "
                                "client_secret")
        return Integration.of(row)

    async def connections(self, user_id: str) -> list[Connection]:
        async with self._sessions() as session:
            rows = (await session.execute(
                select(ActivationRow, IntegrationRow)
                .join(IntegrationRow, IntegrationRow.id == ActivationRow.integration_id)
                .where(ActivationRow.user_id == user_id,
                       ActivationRow.state == ActivationState.ACTIVE.value)
                .order_by(ActivationRow.activated_at)
            )).all()
        return [Connection(activation.id, integration.slug, integration.name,
                           as_utc(activation.activated_at or activation.created_at))
                for activation, integration in rows]

    async def introspect(self, integration: Integration, token: str) -> dict[str, object]:
        """RFC 7662 for the integration's own tokens; anything else is inactive."""
        digest = token_digest(token)
        now = datetime.now(UTC)
        async with self._sessions() as session:
            access = (await session.execute(
                select(ApiTokenRow.expires_at, ApiTokenRow.revoked_at, UserRow, ActivationRow)
                .join(ActivationRow, ActivationRow.id == ApiTokenRow.activation_id)
                .join(UserRow, UserRow.id == ActivationRow.user_id)
                .where(ApiTokenRow.token_sha256 == digest,
                       ActivationRow.integration_id == integration.id)
            )).first()
            refresh = None if access else (await session.execute(
                select(RefreshTokenRow.expires_at, RefreshTokenRow.revoked_at, UserRow,
                       ActivationRow)
                .join(ActivationRow, ActivationRow.id == RefreshTokenRow.activation_id)
                .join(UserRow, UserRow.id == ActivationRow.user_id)
                .where(RefreshTokenRow.token_sha256 == digest,
                       RefreshTokenRow.used_at.is_(None),
                       ActivationRow.integration_id == integration.id)
            )).first()
        found = access or refresh
        if found is None:
            return {"active": False}
        expires, revoked, user, activation = found
        if (revoked is not None or expires is None or as_utc(expires) <= now
                or activation.state != ActivationState.ACTIVE.value):
            return {"active": False}
        return {"active": True, "scope": SCOPE, "client_id": integration.client_id,
                "token_type": "access_token" if access else "refresh_token",
                "exp": int(as_utc(expires).timestamp()),
                "sub": f"{user.extension}@{user.tenant_id}", "tenant_id": user.tenant_id,
                "user_extension": user.extension}

    # --- the activation -------------------------------------------------------------------

    async def subscribe(self, integration: Integration, principal: Principal,
                        confirmation_key: str) -> ActivationResult:
        """Issue the user's tokens, deliver them to the Activation URL, and keep the
        activation only if it answers 2xx; otherwise revoke them."""
        now = datetime.now(UTC)
        activation_id = str(uuid.uuid4())
        pair = new_pair(self._settings.access_token_ttl)
        issued = self._issued(pair, now)
        begun = await self._writer.call(BeginActivation(
            activation_id, integration.id, principal.user_id, confirmation_key, issued, now))
        if not begun:
            return ActivationResult.REPLAYED
        accepted = await self._deliver(integration, principal, confirmation_key, pair)
        await self._writer.call(CompleteActivation(activation_id, accepted,
                                                   datetime.now(UTC)))
        return ActivationResult.ACTIVATED if accepted else ActivationResult.FAILED

    async def _deliver(self, integration: Integration, principal: Principal,
                       confirmation_key: str, pair: TokenPair) -> bool:
        body = {"tenant_id": principal.tenant_id, "user_extension": principal.extension,
                "confirmation_key": confirmation_key, "integration": integration.slug,
                **pair.answer()}
        timeout = aiohttp.ClientTimeout(total=self._settings.activation_timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as client, client.post(
                    integration.activation_url, json=body,
                    headers=integration.validation_headers) as answer:
                accepted = 200 <= answer.status < 300
                status: object = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            accepted, status = False, type(exc).__name__
        # Never the body: it holds the tokens.
        log.info("integrations.activation_called", integration=integration.slug,
                 extension=principal.extension, answer=status, accepted=accepted)
        return accepted

    async def disconnect(self, principal: Principal, activation_id: str) -> bool:
        """The user's own Disconnect; False if it is not theirs (or not live)."""
        async with self._sessions() as session:
            owner = await session.scalar(select(ActivationRow.user_id).where(
                ActivationRow.id == activation_id))
        if owner != principal.user_id:
            return False
        ended = await self._writer.call(EndActivations(
            EndReason.USER, datetime.now(UTC), activation_ids=(activation_id,)))
        return bool(ended)

    # --- the OAuth endpoints ------------------------------------------------------------

    async def refresh(self, integration: Integration, refresh_token: str) -> TokenPair:
        now = datetime.now(UTC)
        pair = new_pair(self._settings.access_token_ttl)
        outcome = await self._writer.call(RefreshGrant(
            integration.id, token_digest(refresh_token), self._issued(pair, now),
            seal(pair, refresh_token), timedelta(seconds=self._settings.refresh_grace), now))
        assert isinstance(outcome, RefreshOutcome)
        if outcome.decision is Decision.ROTATE:
            return pair
        if outcome.decision is Decision.REPLAY and outcome.sealed is not None:
            replayed = unseal(outcome.sealed, refresh_token)
            if replayed is not None:
                return replayed
        if outcome.decision is Decision.REUSE:
            log.warning("integrations.refresh_token_reuse", integration=integration.slug)
            raise InvalidGrant("this refresh token was used already: the activation is "
                               "ended and all its tokens are revoked")
        raise InvalidGrant("the refresh token is unknown, expired or revoked")

    async def revoke(self, integration: Integration, token: str) -> None:
        await self._writer.call(RevokeToken(integration.id, token, datetime.now(UTC)))

    def _issued(self, pair: TokenPair, now: datetime) -> IssuedTokens:
        return IssuedTokens(
            family_id=str(uuid.uuid4()),
            access_id=str(uuid.uuid4()), access_sha256=token_digest(pair.access_token),
            access_expires_at=now + timedelta(seconds=self._settings.access_token_ttl),
            refresh_id=str(uuid.uuid4()), refresh_sha256=token_digest(pair.refresh_token),
            refresh_expires_at=now + timedelta(seconds=self._settings.refresh_token_ttl))


async def tenant_name(sessions: async_sessionmaker[AsyncSession], tenant_id: str) -> str:
    async with sessions() as session:
        name = await session.scalar(select(TenantRow.name).where(TenantRow.id == tenant_id))
    return name or tenant_id


def new_confirmation_key() -> str:
    return secrets.token_urlsafe(24)
