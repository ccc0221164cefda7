"""Apply the provisioning file to the database, idempotently, and read the directory back.

Ids are derived from stable names (uuid5 of the tenant id and the extension, trunk name or
webhook url), so applying the same file twice changes nothing and ids survive restarts.
Objects the file no longer mentions are removed; tokens made with the CLI are kept.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.calls.ids import TenantId, UserId
from hookswitch.config import Provisioning, TenantSection
from hookswitch.directory.credentials import digest_ha1, token_digest
from hookswitch.directory.models import (
    ApiTokenRow,
    NumberRow,
    TenantRow,
    TrunkRow,
    UserRow,
    WebhookRow,
)
from hookswitch.directory.snapshot import Directory, Tenant, Trunk, User


def user_id_for(tenant_id: uuid.UUID | str, extension: str) -> str:
    return str(uuid.uuid5(uuid.UUID(str(tenant_id)), f"user:{extension}"))


def _child_id(tenant_id: uuid.UUID, kind: str, key: str) -> str:
    return str(uuid.uuid5(tenant_id, f"{kind}:{key}"))


async def apply_provisioning(session: AsyncSession, provisioning: Provisioning) -> None:
    wanted_tenants = {str(t.id) for t in provisioning.tenants}
    await session.execute(delete(TenantRow).where(TenantRow.id.not_in(wanted_tenants)))
    for tenant in provisioning.tenants:
        await _apply_tenant(session, tenant)


async def _apply_tenant(session: AsyncSession, tenant: TenantSection) -> None:
    tenant_id = str(tenant.id)
    await session.merge(TenantRow(id=tenant_id, name=tenant.name, sip_domain=tenant.sip_domain))
    realm = tenant.sip_domain or tenant_id
    user_ids = []
    for user in tenant.users:
        user_id = user_id_for(tenant.id, user.extension)
        user_ids.append(user_id)
        await session.merge(
            UserRow(
                id=user_id,
                tenant_id=tenant_id,
                extension=user.extension,
                name=user.name,
                ha1_md5=digest_ha1("MD5", user.extension, realm, user.sip_password),
                ha1_sha256=digest_ha1("SHA-256", user.extension, realm, user.sip_password),
                auto_answer=user.auto_answer,
            )
        )
        await session.execute(delete(NumberRow).where(NumberRow.user_id == user_id))
        for position, number in enumerate(user.numbers):
            session.add(NumberRow(number=number, user_id=user_id, position=position))
        await session.execute(
            delete(ApiTokenRow).where(
                ApiTokenRow.user_id == user_id, ApiTokenRow.source == "config"
            )
        )
        if user.api_token:
            session.add(
                ApiTokenRow(
                    id=_child_id(tenant.id, "token", user.extension),
                    user_id=user_id,
                    token_sha256=token_digest(user.api_token),
                    source="config",
                    created_at=datetime.now(UTC),
                )
            )
    await session.execute(
        delete(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.id.not_in(user_ids))
    )
    trunk_ids = []
    for trunk in tenant.trunks:
        host, port = trunk.hostport
        trunk_id = _child_id(tenant.id, "trunk", trunk.name)
        trunk_ids.append(trunk_id)
        await session.merge(
            TrunkRow(id=trunk_id, tenant_id=tenant_id, name=trunk.name, host=host, port=port)
        )
    await session.execute(
        delete(TrunkRow).where(TrunkRow.tenant_id == tenant_id, TrunkRow.id.not_in(trunk_ids))
    )
    webhook_ids = []
    for webhook in tenant.webhooks:
        webhook_id = _child_id(tenant.id, "webhook", webhook.url)
        webhook_ids.append(webhook_id)
        existing = await session.get(WebhookRow, webhook_id)
        await session.merge(
            WebhookRow(
                id=webhook_id,
                tenant_id=tenant_id,
                url=webhook.url,
                secret=webhook.secret,
                headers=dict(webhook.headers),
                extensions=webhook.extensions,
                disabled_at=existing.disabled_at if existing else None,
            )
        )
    await session.execute(
        delete(WebhookRow).where(
            WebhookRow.tenant_id == tenant_id, WebhookRow.id.not_in(webhook_ids)
        )
    )


async def load_directory(session: AsyncSession, default_tenant: str | None) -> Directory:
    numbers: dict[str, list[str]] = {}
    for row in (await session.scalars(select(NumberRow).order_by(NumberRow.position))).all():
        numbers.setdefault(row.user_id, []).append(row.number)
    users: dict[str, dict[str, User]] = {}
    for u in (await session.scalars(select(UserRow))).all():
        users.setdefault(u.tenant_id, {})[u.extension] = User(
            id=UserId(u.id),
            tenant_id=TenantId(u.tenant_id),
            extension=u.extension,
            name=u.name,
            ha1_md5=u.ha1_md5,
            ha1_sha256=u.ha1_sha256,
            numbers=tuple(numbers.get(u.id, ())),
            auto_answer=u.auto_answer,
        )
    trunks: dict[str, list[Trunk]] = {}
    for t in (await session.scalars(select(TrunkRow).order_by(TrunkRow.name))).all():
        trunks.setdefault(t.tenant_id, []).append(
            Trunk(tenant_id=TenantId(t.tenant_id), name=t.name, host=t.host, port=t.port)
        )
    tenants = {
        TenantId(row.id): Tenant(
            id=TenantId(row.id),
            name=row.name,
            sip_domain=row.sip_domain,
            users=users.get(row.id, {}),
            trunks=tuple(trunks.get(row.id, ())),
        )
        for row in (await session.scalars(select(TenantRow))).all()
    }
    return Directory(tenants, TenantId(default_tenant) if default_tenant else None)
