"""Who a portal login names: ``EXT@DOMAIN`` (the tenant's SIP domain, or its id), or a bare
extension where only one tenant has it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hookswitch.calls.ids import TenantId, UserId
from hookswitch.calls.policy import Principal
from hookswitch.directory.models import TenantRow, UserRow


@dataclass(frozen=True, slots=True)
class LoginCandidate:
    principal: Principal
    password_hash: str | None


async def login_candidate(session: AsyncSession, login: str) -> LoginCandidate | None:
    extension, _, domain = login.strip().partition("@")
    query = select(UserRow).where(UserRow.extension == extension)
    if domain:
        tenants = (await session.scalars(select(TenantRow))).all()
        named = [t.id for t in tenants if domain.lower() in (t.sip_domain or "", t.id)]
        if not named and len(tenants) == 1:
            named = [tenants[0].id]  # as SIP does: a single tenant answers any domain
        query = query.where(UserRow.tenant_id.in_(named))
    users = (await session.scalars(query.limit(2))).all()
    if len(users) != 1:
        return None  # nobody, or ambiguous: the same answer as a wrong password
    user = users[0]
    return LoginCandidate(Principal(user_id=UserId(user.id), tenant_id=TenantId(user.tenant_id),
                                    extension=user.extension), user.password_hash)
