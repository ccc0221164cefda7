"""The ``[[integrations]]`` of the provisioning file, applied at start like the rest of it.

Before the directory removes users, their activations end (``user_removed``); integrations
the file no longer names end theirs (``integration_removed``) and are kept, marked removed,
so that those deactivation notices can still be delivered. Integrations made with the
command line stay.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.config import IntegrationSection, Provisioning
from hookswitch.directory.passwords import hash_secret, secret_matches
from hookswitch.directory.provisioning import user_id_for
from hookswitch.events.models import WebhookRow
from hookswitch.integrations.activation import EndReason
from hookswitch.integrations.lifecycle import (
    DEACTIVATION_TARGET,
    EVENTS_TARGET,
    end_active,
    integration_id_for,
    live_activations,
    target_id,
)
from hookswitch.integrations.models import ActivationRow, IntegrationRow


async def end_removed(session: AsyncSession, provisioning: Provisioning) -> None:
    """Before the directory applies the file: end what its removals end."""
    now = datetime.now(UTC)
    users = {user_id_for(tenant.id, user.extension)
             for tenant in provisioning.tenants for user in tenant.users}
    live = await live_activations(session)
    await end_active(session, [a for a in live if a.user_id not in users],
                     EndReason.USER_REMOVED, now)
    named = {integration_id_for(section.slug) for section in provisioning.integrations}
    removed = (await session.scalars(select(IntegrationRow).where(
        IntegrationRow.source == "config", IntegrationRow.removed_at.is_(None),
        IntegrationRow.id.not_in(named)))).all()
    for integration in removed:
        await end_active(session, await live_activations(session,
                                                         integration_id=integration.id),
                         EndReason.INTEGRATION_REMOVED, now)
        integration.removed_at = now


async def apply_integrations(session: AsyncSession, provisioning: Provisioning) -> None:
    for section in provisioning.integrations:
        await apply_integration(session, section, source="config")


async def apply_integration(session: AsyncSession, section: IntegrationSection,
                            source: str) -> IntegrationRow:
    integration_id = integration_id_for(section.slug)
    row = await session.get(IntegrationRow, integration_id)
    secret_hash = row.client_secret_hash if row is not None else None
    if not secret_matches(secret_hash, section.client_secret):
        secret_hash = hash_secret(section.client_secret)
    values = {
        "slug": section.slug, "name": section.name, "client_id": section.client_id,
        "client_secret_hash": secret_hash, "activation_url": section.activation_url,
        "deactivation_url": section.deactivation_url,
        "redirect_urls": list(section.redirect_urls),
        "validation_headers": dict(section.validation_headers), "logo": section.logo,
        "removed_at": None, "source": source,
    }
    if row is None:
        row = IntegrationRow(id=integration_id, created_at=datetime.now(UTC), **values)
        session.add(row)
        await session.flush()
    else:
        for key, value in values.items():
            setattr(row, key, value)
    await _targets(session, integration_id, section)
    return row


async def _targets(session: AsyncSession, integration_id: str,
                   section: IntegrationSection) -> None:
    """Its webhook (if any) and its Deactivation URL, as outbox targets."""
    wanted = {DEACTIVATION_TARGET: (section.deactivation_url, section.validation_headers)}
    if section.webhook_url:
        wanted[EVENTS_TARGET] = (section.webhook_url, section.webhook_headers)
    for kind, (url, headers) in wanted.items():
        webhook_id = target_id(integration_id, kind)
        existing = await session.get(WebhookRow, webhook_id)
        await session.merge(WebhookRow(
            id=webhook_id, kind=kind, tenant_id=None, integration_id=integration_id,
            url=url, secret=section.webhook_secret, headers=dict(headers), extensions=None,
            disabled_at=existing.disabled_at if existing and existing.url == url else None))
    kept = [target_id(integration_id, kind) for kind in wanted]
    await session.execute(delete(WebhookRow).where(
        WebhookRow.integration_id == integration_id, WebhookRow.id.not_in(kept)))


async def activation_count(session: AsyncSession, integration_id: str) -> int:
    return len((await session.scalars(select(ActivationRow.id).where(
        ActivationRow.integration_id == integration_id,
        ActivationRow.state == "active"))).all())
