"""Reads of recorded calls that the call-control service needs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.calls.ids import CallId, LegId, UserId
from hookswitch.calls.leg import LegState, LegView
from hookswitch.store.legs import LegRow


async def stored_leg(sessions: async_sessionmaker[AsyncSession], leg_id: LegId) -> LegView | None:
    async with sessions() as session:
        leg = await session.get(LegRow, str(leg_id))
        if leg is None:
            return None
        parties = await session.scalars(
            select(LegRow.user_id).where(LegRow.call_id == leg.call_id)
        )
        return LegView(
            id=LegId(leg.id),
            call_id=CallId(leg.call_id),
            tenant_id=leg.tenant_id,
            user_id=UserId(leg.user_id),
            state=LegState(leg.state),
            reason=leg.reason,
            parties=frozenset(UserId(u) for u in parties),
        )
