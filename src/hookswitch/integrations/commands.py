"""The integrations' writes, as commands for the one writer (store/writes.py).

The server makes the tokens (and keeps their plain text only long enough to hand them to
the integrator); these commands store their SHA-256 and move activations through their
states in the writer's transaction, one at a time, so that two refreshes with the same token
can never both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.directory.credentials import token_digest
from hookswitch.directory.models import ApiTokenRow
from hookswitch.integrations.activation import ActivationInput, ActivationState, EndReason
from hookswitch.integrations.lifecycle import end_active, transition
from hookswitch.integrations.models import ActivationRow, RefreshTokenRow
from hookswitch.integrations.tokens import Decision, RefreshState, decide
from hookswitch.store.db import as_utc


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """A new pair, as stored: ids and SHA-256, and when they expire."""

    family_id: str
    access_id: str
    access_sha256: str
    access_expires_at: datetime
    refresh_id: str
    refresh_sha256: str
    refresh_expires_at: datetime


async def _store(session: AsyncSession, activation: ActivationRow, tokens: IssuedTokens,
                 user_id: str, at: datetime) -> None:
    session.add(ApiTokenRow(id=tokens.access_id, user_id=user_id,
                            token_sha256=tokens.access_sha256, source="oauth",
                            created_at=at, expires_at=tokens.access_expires_at,
                            activation_id=activation.id, family_id=activation.family_id))
    session.add(RefreshTokenRow(id=tokens.refresh_id, activation_id=activation.id,
                                family_id=activation.family_id,
                                token_sha256=tokens.refresh_sha256, created_at=at,
                                expires_at=tokens.refresh_expires_at))


@dataclass(frozen=True, slots=True)
class BeginActivation:
    """Subscribe was pressed: the activation's first tokens exist, its Activation URL is
    about to be called. False if the consent form was used already (a replay)."""

    activation_id: str
    integration_id: str
    user_id: str
    confirmation_key: str
    tokens: IssuedTokens
    at: datetime

    async def run(self, session: AsyncSession) -> object:
        used = await session.scalar(select(ActivationRow.id).where(
            ActivationRow.integration_id == self.integration_id,
            ActivationRow.confirmation_key == self.confirmation_key))
        if used is not None:
            return False
        activation = ActivationRow(
            id=self.activation_id, integration_id=self.integration_id, user_id=self.user_id,
            state=ActivationState.ACTIVATING.value, family_id=self.tokens.family_id,
            confirmation_key=self.confirmation_key, created_at=self.at)
        session.add(activation)
        await session.flush()
        await _store(session, activation, self.tokens, self.user_id, self.at)
        return True


@dataclass(frozen=True, slots=True)
class CompleteActivation:
    """What the Activation URL answered: accepted (2xx) or not. An accepted activation
    replaces the user's earlier one of the same integration."""

    activation_id: str
    accepted: bool
    at: datetime
    changes_subscriptions = True

    async def run(self, session: AsyncSession) -> object:
        activation = await session.get(ActivationRow, self.activation_id)
        if activation is None:
            return None
        event = ActivationInput.ACCEPTED if self.accepted else ActivationInput.REFUSED
        outcome = await transition(session, activation, event, self.at)
        if self.accepted:
            earlier = (await session.scalars(select(ActivationRow).where(
                ActivationRow.integration_id == activation.integration_id,
                ActivationRow.user_id == activation.user_id,
                ActivationRow.state == ActivationState.ACTIVE.value,
                ActivationRow.id != activation.id))).all()
            await end_active(session, list(earlier), EndReason.REPLACED, self.at)
        return outcome.state.value if outcome else None


@dataclass(frozen=True, slots=True)
class EndActivations:
    """End activations (by id, or all of a user's for an integration) with a reason."""

    reason: EndReason
    at: datetime
    activation_ids: tuple[str, ...] = ()
    integration_id: str | None = None
    user_id: str | None = None
    changes_subscriptions = True

    async def run(self, session: AsyncSession) -> object:
        query = select(ActivationRow)
        if self.activation_ids:
            query = query.where(ActivationRow.id.in_(self.activation_ids))
        if self.integration_id is not None:
            query = query.where(ActivationRow.integration_id == self.integration_id)
        if self.user_id is not None:
            query = query.where(ActivationRow.user_id == self.user_id)
        return await end_active(session, list((await session.scalars(query)).all()),
                                self.reason, self.at)


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    decision: Decision
    sealed: str | None = None  # REPLAY: the pair given the first time, sealed


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """A refresh with a presented token: rotate, replay, or treat as theft (tokens.py)."""

    integration_id: str
    presented_sha256: str
    next_tokens: IssuedTokens
    sealed_next: str  # the next pair, sealed with the presented token, for a retry
    grace: timedelta
    at: datetime
    changes_subscriptions = True

    async def run(self, session: AsyncSession) -> object:
        found = (await session.execute(
            select(RefreshTokenRow, ActivationRow)
            .join(ActivationRow, ActivationRow.id == RefreshTokenRow.activation_id)
            .where(RefreshTokenRow.token_sha256 == self.presented_sha256,
                   ActivationRow.integration_id == self.integration_id)
        )).first()
        if found is None or found[1].state != ActivationState.ACTIVE.value:
            return RefreshOutcome(Decision.INVALID)
        token, activation = found
        successor = (await session.get(RefreshTokenRow, token.replaced_by)
                     if token.replaced_by else None)
        state = RefreshState(
            expires_at=_aware(token.expires_at), used_at=_maybe_aware(token.used_at),
            revoked=token.revoked_at is not None,
            successor_unused=successor is not None and successor.used_at is None
            and successor.revoked_at is None)
        decision = decide(state, self.at, self.grace)
        if decision is Decision.ROTATE:
            token.used_at = self.at
            token.replaced_by = self.next_tokens.refresh_id
            token.replay = self.sealed_next
            await _store(session, activation, self.next_tokens, activation.user_id, self.at)
        elif decision is Decision.REUSE:
            await end_active(session, [activation], EndReason.REFRESH_TOKEN_REUSE, self.at)
        return RefreshOutcome(decision, token.replay if decision is Decision.REPLAY else None)


@dataclass(frozen=True, slots=True)
class RevokeToken:
    """RFC 7009: a refresh token ends its activation (reason ``integrator``); an access
    token is revoked alone. Tokens of other clients, or unknown ones, change nothing."""

    integration_id: str
    token: str
    at: datetime
    changes_subscriptions = True

    async def run(self, session: AsyncSession) -> object:
        digest = token_digest(self.token)
        activation = await session.scalar(
            select(ActivationRow).join(RefreshTokenRow,
                                       RefreshTokenRow.activation_id == ActivationRow.id)
            .where(RefreshTokenRow.token_sha256 == digest,
                   ActivationRow.integration_id == self.integration_id))
        if activation is not None:
            return await end_active(session, [activation], EndReason.INTEGRATOR, self.at)
        access = await session.scalar(
            select(ApiTokenRow).join(ActivationRow,
                                     ActivationRow.id == ApiTokenRow.activation_id)
            .where(ApiTokenRow.token_sha256 == digest,
                   ActivationRow.integration_id == self.integration_id))
        if access is not None and access.revoked_at is None:
            access.revoked_at = self.at
        return 0


def _aware(moment: datetime) -> datetime:
    return as_utc(moment)


def _maybe_aware(moment: datetime | None) -> datetime | None:
    return as_utc(moment) if moment is not None else None
