"""A user's call history: their ended legs, newest first, a page at a time (keyset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.calls.ids import TenantId, UserId
from hookswitch.calls.leg import LegState
from hookswitch.calls.listing import EndedLeg, Position
from hookswitch.store.db import as_utc
from hookswitch.store.legs import LegChangeRow, LegRow

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """Epoch microseconds, exactly (no float on the way)."""
    return (as_utc(moment) - _EPOCH) // _MICROSECOND


_HANGUP = and_(LegChangeRow.leg_id == LegRow.id, LegChangeRow.state == LegState.HANGUP.value)


async def ended_legs(sessions: async_sessionmaker[AsyncSession], tenant_id: TenantId,
                     user_id: UserId, after: Position | None, limit: int) -> list[EndedLeg]:
    """At most ``limit`` of the user's ended legs, newest first (by end, then by id), from
    just after ``after`` (the last leg of the previous page) or from the newest.

    The end is the leg's HANGUP change (``leg_changes.at_us``, exact integer µs, and its
    last change: the summary is numbered after it), not ``legs.ended_at``: the writer's
    update leaves that column, on SQLite, as text in another format than the rows it
    inserts, so comparing it with a bound datetime is not exact there."""
    ended_us = LegChangeRow.at_us
    query = (
        select(LegRow, ended_us, LegChangeRow.sequence)
        .join(LegChangeRow, _HANGUP)
        .where(LegRow.tenant_id == tenant_id, LegRow.user_id == user_id,
               LegRow.state == LegState.HANGUP.value)
        .order_by(ended_us.desc(), LegRow.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(or_(ended_us < after.ended_us,
                                and_(ended_us == after.ended_us, LegRow.id < after.leg_id)))
    async with sessions() as session:
        rows = (await session.execute(query)).all()
        changes: dict[str, list[tuple[str, int]]] = {}
        if rows:
            for leg_id, state, at_us in (await session.execute(
                select(LegChangeRow.leg_id, LegChangeRow.state, LegChangeRow.at_us)
                .where(LegChangeRow.leg_id.in_([leg.id for leg, _, _ in rows]))
                .order_by(LegChangeRow.leg_id, LegChangeRow.sequence)
            )).all():
                changes.setdefault(leg_id, []).append((state, at_us))
    return [_ended(leg, at_us, sequence, tuple(changes.get(leg.id, ())))
            for leg, at_us, sequence in rows]


def _ended(leg: LegRow, ended_us: int, last_sequence: int,
           changes: tuple[tuple[str, int], ...]) -> EndedLeg:
    return EndedLeg(
        id=leg.id,
        call_id=leg.call_id,
        tenant_id=leg.tenant_id,
        extension=leg.extension,
        direction=leg.direction,
        caller_number=leg.caller_number,
        caller_name=leg.caller_name,
        callee_number=leg.callee_number,
        callee_name=leg.callee_name,
        reason=leg.reason,
        started_us=to_us(leg.created_at),
        answered_us=to_us(leg.answered_at) if leg.answered_at is not None else None,
        ended_us=ended_us,
        last_sequence=last_sequence,
        changes=changes,
    )
