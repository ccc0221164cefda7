"""What ``hookswitch integrations create|list|rotate-secret|deactivate`` do (from the
command line, next to a running server or not: the server sees the change within seconds)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.config import IntegrationSection
from hookswitch.directory.models import UserRow
from hookswitch.directory.passwords import hash_secret
from hookswitch.integrations.activation import ActivationState, EndReason
from hookswitch.integrations.lifecycle import end_active, integration_id_for, live_activations
from hookswitch.integrations.models import ActivationRow, IntegrationRow
from hookswitch.integrations.provisioning import apply_integration


class AdminError(Exception):
    """What the operator asked for cannot be done; the message says why."""


def new_client_secret() -> str:
    return "hss_" + secrets.token_urlsafe(32)


async def create(session: AsyncSession, section: IntegrationSection) -> None:
    existing = await session.scalar(select(IntegrationRow).where(
        (IntegrationRow.slug == section.slug) | (IntegrationRow.client_id == section.client_id)))
    if existing is not None and existing.removed_at is None:
        raise AdminError(f"an integration with slug {existing.slug!r} or client_id "
                         f"{existing.client_id!r} exists already")
    await apply_integration(session, section, source="cli")


async def listing(session: AsyncSession) -> list[str]:
    active = (select(ActivationRow.integration_id, func.count().label("n"))
              .where(ActivationRow.state == ActivationState.ACTIVE.value)
              .group_by(ActivationRow.integration_id).subquery())
    rows = (await session.execute(
        select(IntegrationRow, active.c.n).outerjoin(active,
                                                     active.c.integration_id == IntegrationRow.id)
        .order_by(IntegrationRow.slug))).all()
    return [f"{row.slug}\t{row.name}\tclient_id={row.client_id}\tsource={row.source}\t"
            f"active={count or 0}" + ("\tremoved" if row.removed_at else "")
            for row, count in rows]


async def rotate_secret(session: AsyncSession, slug: str) -> str:
    row = await session.get(IntegrationRow, integration_id_for(slug))
    if row is None or row.removed_at is not None:
        raise AdminError(f"no integration {slug!r}")
    if row.source == "config":
        raise AdminError(f"{slug!r} comes from the provisioning file: change its "
                         "client_secret there (the next start applies it)")
    secret = new_client_secret()
    row.client_secret_hash = hash_secret(secret)
    return secret


async def deactivate(session: AsyncSession, slug: str, tenant_id: str | None,
                     extension: str | None) -> int:
    """End the integration's activations (of one user, or all): reason ``admin``."""
    integration_id = integration_id_for(slug)
    if await session.get(IntegrationRow, integration_id) is None:
        raise AdminError(f"no integration {slug!r}")
    user_id = None
    if extension is not None:
        user_id = await session.scalar(select(UserRow.id).where(
            UserRow.tenant_id == tenant_id, UserRow.extension == extension))
        if user_id is None:
            raise AdminError(f"no extension {extension} in tenant {tenant_id}")
    live = await live_activations(session, integration_id=integration_id, user_id=user_id)
    return await end_active(session, live, EndReason.ADMIN, datetime.now(UTC))
