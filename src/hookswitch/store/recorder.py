"""The one writer: applies leg records and registration changes in order, one transaction
per batch, on the asyncio side. Nothing on the call path waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.calls.leg import HangupReason, LegChange, LegState
from hookswitch.calls.switch import LegOpened
from hookswitch.directory.models import BindingRow
from hookswitch.events.models import EventRow
from hookswitch.events.outbox import Subscriptions, record_event
from hookswitch.sip.location import Binding
from hookswitch.store.db import as_utc
from hookswitch.store.legs import CallRow, LegChangeRow, LegRow

log = structlog.get_logger("hookswitch.store")


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


@dataclass(frozen=True, slots=True)
class BindingChange:
    user_id: str
    binding: Binding | None  # None: removed
    contact: str | None  # the contact removed; None with binding None: all of the user's


Record = LegOpened | LegChange | BindingChange


class Recorder:
    """Writes leg records and, in the same transaction, their call events (outbox)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        subscriptions: Subscriptions | None = None,
        on_events: Callable[[list[EventRow]], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self.subscriptions = subscriptions or Subscriptions()
        self._on_events = on_events or (lambda events: None)
        self._queue: asyncio.Queue[Record | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="recorder")

    def put(self, record: Record) -> None:
        self._queue.put_nowait(record)

    async def drain(self) -> None:
        """Write what is queued, then stop (shutdown)."""
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            stop = None in batch
            records = [r for r in batch if r is not None]
            if records:
                await self._write_batch(records)
            if stop:
                return

    async def _write_batch(self, records: list[Record]) -> None:
        try:
            events: list[EventRow] = []
            async with self._sessions.begin() as session:
                for record in records:
                    event = await self._write(session, record)
                    if event is not None:
                        events.append(event)
            if events:
                self._on_events(events)
            return
        except Exception:
            if len(records) == 1:
                log.exception("store.write_failed", record=type(records[0]).__name__)
                return
        # One bad record must not lose the others: write them one by one.
        for record in records:
            await self._write_batch([record])

    async def _write(self, session: AsyncSession, record: Record) -> EventRow | None:
        match record:
            case LegOpened(leg=leg, kind=kind):
                if await session.get(CallRow, leg.call_id) is None:
                    session.add(
                        CallRow(
                            id=leg.call_id,
                            tenant_id=leg.tenant_id,
                            kind=kind.value,
                            created_at=_at(leg.created_us),
                        )
                    )
                    await session.flush()
                session.add(
                    LegRow(
                        id=leg.id,
                        call_id=leg.call_id,
                        tenant_id=leg.tenant_id,
                        user_id=leg.user_id,
                        extension=leg.extension,
                        direction=leg.direction.value,
                        state=LegState.RINGING.value,
                        caller_number=leg.caller.number,
                        caller_name=leg.caller.name,
                        callee_number=leg.callee.number,
                        callee_name=leg.callee.name,
                        created_at=_at(leg.created_us),
                    )
                )
                await session.flush()  # no ORM relationship orders these inserts for us
                first = leg.history[0]
                session.add(
                    LegChangeRow(leg_id=leg.id, sequence=1, state=first.state.value,
                                 at_us=first.at_us)
                )
                row = await session.get(LegRow, leg.id)
                assert row is not None
                return await record_event(session, self.subscriptions, row, leg.user_id,
                                          first.state.value, 1, first.at_us, None)
            case LegChange():
                values: dict[str, object] = {"state": record.state.value}
                if record.state is LegState.HANGUP:
                    values["ended_at"] = _at(record.at_us)
                    values["reason"] = record.reason.value if record.reason else None
                await session.execute(
                    update(LegRow).where(LegRow.id == record.leg_id).values(**values)
                )
                if record.state is LegState.ACTIVE:
                    # answered_at is the first answer, not a resume from hold
                    await session.execute(
                        update(LegRow)
                        .where(LegRow.id == record.leg_id, LegRow.answered_at.is_(None))
                        .values(answered_at=_at(record.at_us))
                    )
                reason = record.reason.value if record.reason else None
                session.add(
                    LegChangeRow(
                        leg_id=record.leg_id,
                        sequence=record.sequence,
                        state=record.state.value,
                        reason=reason,
                        at_us=record.at_us,
                    )
                )
                row = await session.get(LegRow, record.leg_id)
                if row is None:
                    return None
                return await record_event(session, self.subscriptions, row, row.user_id,
                                          record.state.value, record.sequence, record.at_us,
                                          reason)
            case BindingChange(user_id=user_id, binding=binding, contact=contact):
                await _write_binding(session, user_id, binding, contact)
        return None


async def _write_binding(
    session: AsyncSession, user_id: str, binding: Binding | None, contact: str | None
) -> None:
    if binding is None:
        query = delete(BindingRow).where(BindingRow.user_id == user_id)
        if contact is not None:
            query = query.where(BindingRow.contact == contact)
        await session.execute(query)
        return
    row = await session.scalar(
        select(BindingRow).where(
            BindingRow.user_id == user_id, BindingRow.contact == binding.contact
        )
    )
    if row is None:
        row = BindingRow(user_id=user_id, contact=binding.contact)
        session.add(row)
    row.source_host, row.source_port = binding.source
    row.expires_at = datetime.fromtimestamp(binding.expires_at, UTC)
    row.user_agent = binding.user_agent


async def close_open_legs(
    session: AsyncSession, now_us: int, subscriptions: Subscriptions
) -> int:
    """Legs a crash left open end with reason ``failed`` (HANGUP is reached exactly once),
    and their HANGUP events go to the outbox like any other."""
    open_legs = (
        await session.scalars(select(LegRow).where(LegRow.state != LegState.HANGUP.value))
    ).all()
    for leg in open_legs:
        last = await session.scalar(
            select(LegChangeRow.sequence)
            .where(LegChangeRow.leg_id == leg.id)
            .order_by(LegChangeRow.sequence.desc())
            .limit(1)
        )
        leg.state = LegState.HANGUP.value
        leg.reason = HangupReason.FAILED.value
        leg.ended_at = _at(now_us)
        sequence = (last or 0) + 1
        session.add(
            LegChangeRow(
                leg_id=leg.id,
                sequence=sequence,
                state=LegState.HANGUP.value,
                reason=HangupReason.FAILED.value,
                at_us=now_us,
            )
        )
        await record_event(session, subscriptions, leg, leg.user_id, LegState.HANGUP.value,
                           sequence, now_us, HangupReason.FAILED.value)
    return len(open_legs)


async def load_bindings(session: AsyncSession) -> list[Binding]:
    now = datetime.now(UTC)
    rows = (await session.scalars(select(BindingRow))).all()
    bindings = []
    for row in rows:
        expires = as_utc(row.expires_at)
        if expires > now:
            bindings.append(
                Binding(
                    user_id=row.user_id,  # type: ignore[arg-type]
                    contact=row.contact,
                    source=(row.source_host, row.source_port),
                    expires_at=expires.timestamp(),
                    user_agent=row.user_agent,
                )
            )
    return bindings
