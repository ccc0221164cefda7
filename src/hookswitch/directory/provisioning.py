"""Apply the provisioning file to the database, idempotently, and read the directory back.

Ids are derived from stable names (uuid5 of the tenant id and the extension or trunk
name), so applying the same file twice changes nothing and ids survive restarts. Objects
the file no longer mentions are removed; tokens made with the CLI are kept. (Webhooks are
the events room's: events/provisioning.py.)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.calls.directory import Directory, Tenant, Trunk, User
from hookswitch.calls.ids import TenantId, UserId, stable_id
from hookswitch.config import (
    Provisioning,
    TenantSection,
    TrunkSection,
    UserSection,
)
from hookswitch.directory.credentials import digest_ha1, token_digest
from hookswitch.directory.models import (
    ApiTokenRow,
    NumberRow,
    TenantRow,
    TrunkRow,
    UserRow,
)
from hookswitch.directory.passwords import hash_secret, secret_matches


def user_id_for(tenant_id: uuid.UUID | str, extension: str) -> str:
    return stable_id(tenant_id, "user", extension)


async def apply_provisioning(session: AsyncSession, provisioning: Provisioning) -> None:
    wanted_tenants = {str(t.id) for t in provisioning.tenants}
    await session.execute(delete(TenantRow).where(TenantRow.id.not_in(wanted_tenants)))
    for tenant in provisioning.tenants:
        await _apply_tenant(session, tenant)


async def _apply_tenant(session: AsyncSession, tenant: TenantSection) -> None:
    await session.merge(TenantRow(id=str(tenant.id), name=tenant.name,
                                  sip_domain=tenant.sip_domain))
    user_ids = [await _apply_user(session, tenant, user) for user in tenant.users]
    await _remove_others(session, UserRow, str(tenant.id), user_ids)
    trunk_ids = [await _apply_trunk(session, tenant, trunk) for trunk in tenant.trunks]
    await _remove_others(session, TrunkRow, str(tenant.id), trunk_ids)


async def _remove_others(session: AsyncSession, table: type[UserRow | TrunkRow],
                         tenant_id: str, kept: list[str]) -> None:
    """What the file no longer mentions goes (its children by cascade)."""
    await session.execute(delete(table).where(table.tenant_id == tenant_id,
                                              table.id.not_in(kept)))


async def _apply_user(session: AsyncSession, tenant: TenantSection, user: UserSection) -> str:
    user_id = user_id_for(tenant.id, user.extension)
    realm = tenant.sip_domain or str(tenant.id)  # as Tenant.realm: the HA1 depends on it
    existing = await session.get(UserRow, user_id)
    password_hash = existing.password_hash if existing else None
    if user.password is None:
        password_hash = None
    elif not secret_matches(password_hash, user.password):
        password_hash = hash_secret(user.password)  # argon2: salted, slow on purpose
    await session.merge(UserRow(
        id=user_id,
        tenant_id=str(tenant.id),
        extension=user.extension,
        name=user.name,
        ha1_md5=digest_ha1("MD5", user.extension, realm, user.sip_password),
        ha1_sha256=digest_ha1("SHA-256", user.extension, realm, user.sip_password),
        auto_answer=user.auto_answer,
        password_hash=password_hash,
    ))
    await session.execute(delete(NumberRow).where(NumberRow.user_id == user_id))
    for position, number in enumerate(user.numbers):
        session.add(NumberRow(number=number, user_id=user_id, position=position))
    # The file's fixed token is replaced; tokens made with the CLI are kept.
    await session.execute(delete(ApiTokenRow).where(ApiTokenRow.user_id == user_id,
                                                    ApiTokenRow.source == "config"))
    if user.api_token:
        session.add(ApiTokenRow(
            id=stable_id(tenant.id, "token", user.extension),
            user_id=user_id,
            token_sha256=token_digest(user.api_token),
            source="config",
            created_at=datetime.now(UTC),
        ))
    return user_id


async def _apply_trunk(session: AsyncSession, tenant: TenantSection,
                       trunk: TrunkSection) -> str:
    trunk_id = stable_id(tenant.id, "trunk", trunk.name)
    host, port = trunk.hostport
    await session.merge(TrunkRow(id=trunk_id, tenant_id=str(tenant.id), name=trunk.name,
                                 host=host, port=port))
    return trunk_id


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
