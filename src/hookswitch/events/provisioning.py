"""The webhooks of the provisioning file (``[[tenants.webhooks]]``), applied like the rest
of it (directory/provisioning.py): idempotently, with stable ids; the file's webhooks only.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.calls.ids import stable_id
from hookswitch.config import Provisioning, TenantSection, WebhookSection
from hookswitch.events.models import WebhookRow


async def apply_webhooks(session: AsyncSession, provisioning: Provisioning) -> None:
    """After the directory's tenants: a removed tenant's webhooks went with it."""
    for tenant in provisioning.tenants:
        kept = [await _apply_webhook(session, tenant, hook) for hook in tenant.webhooks]
        await session.execute(delete(WebhookRow).where(WebhookRow.tenant_id == str(tenant.id),
                                                       WebhookRow.id.not_in(kept)))


async def _apply_webhook(session: AsyncSession, tenant: TenantSection,
                         webhook: WebhookSection) -> str:
    webhook_id = stable_id(tenant.id, "webhook", webhook.url)
    existing = await session.get(WebhookRow, webhook_id)
    await session.merge(WebhookRow(
        id=webhook_id,
        tenant_id=str(tenant.id),
        url=webhook.url,
        secret=webhook.secret,
        headers=dict(webhook.headers),
        extensions=webhook.extensions,
        # a webhook disabled by a 410 stays disabled across restarts
        disabled_at=existing.disabled_at if existing else None,
    ))
    return webhook_id
