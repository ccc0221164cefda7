"""The one writer: applies leg records and registration changes in order, one transaction
per batch, on the asyncio side. Nothing on the call path waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.calls.leg import HangupReason, Leg, LegChange, LegState
from hookswitch.calls.switch import LegOpened
from hookswitch.directory.models import BindingRow
from hookswitch.events.models import DeliveryRow, EventRow
from hookswitch.events.outbox import Subscriptions, new_delivery, new_event
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
        on_events: Callable[[list[EventRow], list[DeliveryRow]], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self.subscriptions = subscriptions or Subscriptions()
        self._on_events = on_events or (lambda events, deliveries: None)
        self._legs: dict[str, _LegInfo] = {}  # live legs, for their events' fixed fields
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
            async with self._sessions.begin() as session:
                events, deliveries = await self._write(session, records)
        except Exception:
            if len(records) == 1:
                log.exception("store.write_failed", record=type(records[0]).__name__)
                return
            # One bad record must not lose the others: write them one by one.
            for record in records:
                await self._write_batch([record])
            return
        self._forget_ended(records)
        if events:
            self._on_events(events, deliveries)

    async def _write(
        self, session: AsyncSession, records: list[Record]
    ) -> tuple[list[EventRow], list[DeliveryRow]]:
        """Write a batch in a few phases (a flush each, whatever the batch size): calls, then
        legs, then changes with their events, then deliveries. Parents go before children
        because no ORM relationship orders these inserts for us."""
        opened = [r for r in records if isinstance(r, LegOpened)]
        for leg_opened in opened:
            self._legs[leg_opened.leg.id] = _LegInfo.of(leg_opened.leg)
        new_calls = {r.leg.call_id: r for r in opened}
        if new_calls:
            known = set(
                (await session.scalars(
                    select(CallRow.id).where(CallRow.id.in_(list(new_calls)))
                )).all()
            )
            for call_id, first_leg in new_calls.items():
                if call_id not in known:
                    session.add(CallRow(id=call_id, tenant_id=first_leg.leg.tenant_id,
                                        kind=first_leg.kind.value,
                                        created_at=_at(first_leg.leg.created_us)))
            await session.flush()
        for leg_opened in opened:
            session.add(_leg_row(leg_opened))
        if opened:
            await session.flush()
        pending: list[tuple[EventRow, _LegInfo]] = []
        for record in records:
            match record:
                case LegOpened(leg=leg):
                    first = leg.history[0]
                    change = LegChange(leg_id=leg.id, call_id=leg.call_id, state=first.state,
                                       sequence=1, at_us=first.at_us)
                    pending.append(self._change(session, change))
                case LegChange():
                    await self._update_leg(session, record)
                    pending.append(self._change(session, record))
                case BindingChange(user_id=user_id, binding=binding, contact=contact):
                    await _write_binding(session, user_id, binding, contact)
        if not pending:
            return [], []
        await session.flush()  # gives the events their ids, which order the streams
        deliveries = [
            new_delivery(event, webhook_id)
            for event, info in pending
            for webhook_id in self.subscriptions.for_user(info.tenant_id, info.extension)
        ]
        session.add_all(deliveries)
        await session.flush()  # and the deliveries theirs, which the sender keys on
        return [event for event, _ in pending], deliveries

    def _change(self, session: AsyncSession, change: LegChange) -> tuple[EventRow, _LegInfo]:
        reason = change.reason.value if change.reason else None
        session.add(LegChangeRow(leg_id=change.leg_id, sequence=change.sequence,
                                 state=change.state.value, reason=reason, at_us=change.at_us))
        info = self._legs[change.leg_id]
        event = new_event(info, info.user_id, change.state.value, change.sequence,
                          change.at_us, reason)
        session.add(event)
        return event, info

    @staticmethod
    async def _update_leg(session: AsyncSession, change: LegChange) -> None:
        values: dict[str, object] = {"state": change.state.value}
        if change.state is LegState.ACTIVE:
            # answered_at is the first answer, not a resume from hold
            values["answered_at"] = func.coalesce(LegRow.answered_at, _at(change.at_us))
        if change.state is LegState.HANGUP:
            values["ended_at"] = _at(change.at_us)
            values["reason"] = change.reason.value if change.reason else None
        await session.execute(update(LegRow).where(LegRow.id == change.leg_id).values(**values))

    def _forget_ended(self, records: list[Record]) -> None:
        for record in records:
            if isinstance(record, LegChange) and record.state is LegState.HANGUP:
                self._legs.pop(record.leg_id, None)


@dataclass(frozen=True, slots=True)
class _LegInfo:
    """What a leg's events repeat from the leg itself (it never changes)."""

    id: str
    call_id: str
    tenant_id: str
    user_id: str
    extension: str
    direction: str
    caller_number: str
    caller_name: str
    callee_number: str
    callee_name: str

    @classmethod
    def of(cls, leg: Leg) -> _LegInfo:
        return cls(leg.id, leg.call_id, leg.tenant_id, leg.user_id, leg.extension,
                   leg.direction.value, leg.caller.number, leg.caller.name,
                   leg.callee.number, leg.callee.name)


def _leg_row(record: LegOpened) -> LegRow:
    leg = record.leg
    return LegRow(
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
        event = new_event(leg, leg.user_id, LegState.HANGUP.value, sequence, now_us,
                          HangupReason.FAILED.value)
        session.add(event)
        await session.flush()
        for webhook_id in subscriptions.for_user(leg.tenant_id, leg.extension):
            session.add(new_delivery(event, webhook_id))
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
