"""Reads of recorded calls that the call-control service needs."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.calls.ids import CallId, LegId, UserId
from hookswitch.calls.leg import LegState, LegView
from hookswitch.calls.listing import RemoteLeg
from hookswitch.store.history import to_us
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


async def leg_holder(sessions: async_sessionmaker[AsyncSession],
                     leg_id: str) -> tuple[str, str, str] | None:
    """(node that holds it, state, tenant) of a recorded leg; in a cluster, where its
    commands go."""
    async with sessions() as session:
        row = (await session.execute(
            select(LegRow.node_id, LegRow.state, LegRow.tenant_id).where(LegRow.id == leg_id)
        )).one_or_none()
    return None if row is None else (row.node_id, row.state, row.tenant_id)


async def live_legs_on(sessions: async_sessionmaker[AsyncSession],
                       not_on: Callable[[], set[str]], tenant_id: str,
                       user_id: str) -> list[RemoteLeg]:
    """The user's legs not ended that nodes other than the given ones hold (in a cluster:
    not this node, whose switch knows its own, and not a dead node, whose legs are being
    ended by the node taking it over). Not "the nodes alive at the last heartbeat": a node
    that joined since then already holds calls."""
    async with sessions() as session:
        rows = await session.scalars(
            select(LegRow).where(LegRow.tenant_id == tenant_id, LegRow.user_id == user_id,
                                 LegRow.state != LegState.HANGUP.value,
                                 LegRow.node_id.not_in(not_on())))
        return [RemoteLeg(id=row.id, call_id=row.call_id, state=row.state,
                          direction=row.direction, caller_number=row.caller_number,
                          caller_name=row.caller_name, callee_number=row.callee_number,
                          callee_name=row.callee_name, created_us=to_us(row.created_at))
                for row in rows]
