"""What an activation's transitions do to the database (activation.py decides which).

Used by the one writer's commands (commands.py) and by provisioning at start-up (before the
events worker runs). Every end revokes the activation's tokens at once (open event streams
of them close within seconds) and stops its events; an announced end queues the
deactivation notice in the outbox, delivered with retries like a webhook.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.calls.ids import stable_id
from hookswitch.directory.models import ApiTokenRow, UserRow
from hookswitch.events.models import (
    DeliveryRow,
    EventRow,
    WebhookRow,
    WebhookSubscriptionRow,
)
from hookswitch.events.outbox import delivery_values, outbox_values
from hookswitch.integrations.activation import (
    ActivationInput,
    ActivationState,
    EndReason,
    Outcome,
    step,
)
from hookswitch.integrations.models import ActivationRow, IntegrationRow, RefreshTokenRow

# Where integrations' targets get their stable ids from (uuid5 namespace).
INTEGRATIONS = "5d6e7f80-91a2-4b3c-8d4e-5f60718293a4"
EVENTS_TARGET = "events"
DEACTIVATION_TARGET = "deactivation"


def integration_id_for(slug: str) -> str:
    return stable_id(INTEGRATIONS, "integration", slug)


def target_id(integration_id: str, kind: str) -> str:
    """One events target and one deactivation target per integration."""
    return stable_id(integration_id, "target", kind)


async def revoke_tokens(session: AsyncSession, activation_id: str, at: datetime,
                        family_id: str | None = None) -> None:
    """Revoke the access and refresh tokens of an activation (of one family only)."""
    access = update(ApiTokenRow).where(ApiTokenRow.activation_id == activation_id,
                                       ApiTokenRow.revoked_at.is_(None))
    refresh = update(RefreshTokenRow).where(RefreshTokenRow.activation_id == activation_id,
                                            RefreshTokenRow.revoked_at.is_(None))
    if family_id is not None:
        access = access.where(ApiTokenRow.family_id == family_id)
        refresh = refresh.where(RefreshTokenRow.family_id == family_id)
    await session.execute(access.values(revoked_at=at))
    await session.execute(refresh.values(revoked_at=at))


async def transition(session: AsyncSession, activation: ActivationRow, event: ActivationInput,
                     at: datetime, reason: EndReason | None = None) -> Outcome | None:
    """Apply ``event`` to a stored activation, and carry out what it asks for."""
    outcome = step(ActivationState(activation.state), event, reason)
    if outcome is None:
        return None
    activation.state = outcome.state.value
    if outcome.state is ActivationState.ACTIVE:
        activation.activated_at = at
        await _subscribe(session, activation)
    else:
        activation.ended_at = at
        activation.end_reason = reason.value if reason else None
        await _unsubscribe(session, activation)
    if outcome.revoke_tokens:
        await revoke_tokens(session, activation.id, at)
    if outcome.announce is not None:
        await _announce(session, activation, outcome.announce)
    return outcome


async def end_active(session: AsyncSession, activations: list[ActivationRow],
                     reason: EndReason, at: datetime) -> int:
    """End each of these activations that is live (ACTIVATING or ACTIVE)."""
    ended = 0
    for activation in activations:
        if activation.state in (ActivationState.ACTIVATING, ActivationState.ACTIVE):
            await transition(session, activation, ActivationInput.END, at, reason)
            ended += 1
    return ended


async def live_activations(session: AsyncSession, *, integration_id: str | None = None,
                           user_id: str | None = None) -> list[ActivationRow]:
    query = select(ActivationRow).where(ActivationRow.state.in_(
        [ActivationState.ACTIVATING.value, ActivationState.ACTIVE.value]))
    if integration_id is not None:
        query = query.where(ActivationRow.integration_id == integration_id)
    if user_id is not None:
        query = query.where(ActivationRow.user_id == user_id)
    return list((await session.scalars(query)).all())


async def _subscribe(session: AsyncSession, activation: ActivationRow) -> None:
    events_target = target_id(activation.integration_id, EVENTS_TARGET)
    if await session.get(WebhookRow, events_target) is None:
        return  # the integration takes no events
    exists = await session.get(WebhookSubscriptionRow, (events_target, activation.user_id))
    if exists is None:
        await session.execute(insert(WebhookSubscriptionRow).values(
            webhook_id=events_target, user_id=activation.user_id))


async def _unsubscribe(session: AsyncSession, activation: ActivationRow) -> None:
    still_active = await session.scalar(select(ActivationRow.id).where(
        ActivationRow.integration_id == activation.integration_id,
        ActivationRow.user_id == activation.user_id,
        ActivationRow.state == ActivationState.ACTIVE.value,
        ActivationRow.id != activation.id))
    if still_active is None:
        await session.execute(delete(WebhookSubscriptionRow).where(
            WebhookSubscriptionRow.webhook_id == target_id(activation.integration_id,
                                                           EVENTS_TARGET),
            WebhookSubscriptionRow.user_id == activation.user_id))


async def _announce(session: AsyncSession, activation: ActivationRow,
                    reason: EndReason) -> None:
    """The deactivation notice (DESIGN.md), queued for the integration's Deactivation URL."""
    found = (await session.execute(
        select(UserRow, IntegrationRow)
        .join(IntegrationRow, IntegrationRow.id == activation.integration_id)
        .where(UserRow.id == activation.user_id)
    )).first()
    if found is None:
        return
    user, integration = found
    # DESIGN.md's four fields, and the confirmation key of the activation that ended: a
    # notice retried late must not end the integrator's newer connection of the same user.
    payload = {"tenant_id": user.tenant_id, "user_extension": user.extension,
               "integration": integration.slug, "reason": reason.value,
               "confirmation_key": activation.confirmation_key}
    values = outbox_values("deactivation", user.tenant_id, user.id, activation.id, 0, payload)
    event_id = (await session.execute(
        insert(EventRow).values(**values).returning(EventRow.id))).scalar_one()
    await session.execute(insert(DeliveryRow).values(**delivery_values(
        event_id, activation.id, values["created_at"],
        target_id(integration.id, DEACTIVATION_TARGET))))
