"""The one writer: applies leg records and registration changes in order, one transaction
per batch, in the events worker process (events/worker.py). Nothing on the call path
waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Insert, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.calls.dialogs import DialogRecord, DialogsClosed, DialogsSaved
from hookswitch.calls.leg import Direction, HangupReason, Leg, LegChange, LegState, Party
from hookswitch.calls.registrations import Binding
from hookswitch.calls.switch import LegOpened
from hookswitch.events.models import DeliveryRow, EventRow
from hookswitch.events.outbox import (
    OutboxDelivery,
    OutboxEvent,
    Subscriptions,
    delivery_values,
    event_values,
    outbox_values,
)
from hookswitch.events.payload import NOT_HELD, HeldTime, summary_event
from hookswitch.store.base import Base
from hookswitch.store.db import as_utc
from hookswitch.store.dialogs import DialogRow, dialog_json
from hookswitch.store.legs import CallRow, LegChangeRow, LegRow
from hookswitch.store.lock import DEFAULT_NODE
from hookswitch.store.registrations import BindingRow

log = structlog.get_logger("hookswitch.store")


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _us(moment: datetime) -> int:
    return int(as_utc(moment).timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class BindingChange:
    user_id: str
    binding: Binding | None  # None: removed
    contact: str | None  # the contact removed; None with binding None: all of the user's


Statements = Callable[[AsyncSession], Awaitable[object]]


@dataclass(eq=False, slots=True)
class Write:
    """Another component's change, applied by the one writer in its turn. SQLite takes one
    writer at a time: the webhook sender writing its outcomes on its own connection made
    both wait in SQLite's busy handler (up to 100 ms a try) and held events back for
    seconds at 110 calls/s. ``done`` gets what the statements returned, once committed."""

    statements: Statements
    done: asyncio.Future[object]
    result: object = None


Record = LegOpened | LegChange | BindingChange | DialogRecord | Write


LINGER = 0.005  # seconds a leg record waits for others to share its transaction


class Recorder:
    """Writes leg records and, in the same transaction, their call events (outbox)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        subscriptions: Subscriptions | None = None,
        on_events: Callable[[list[OutboxEvent], list[OutboxDelivery]], None] | None = None,
        node_id: str = DEFAULT_NODE,
    ) -> None:
        self._sessions = sessions
        self._node_id = node_id
        self.subscriptions = subscriptions or Subscriptions()
        self._on_events = on_events or (lambda events, deliveries: None)
        self._legs: dict[str, _LegInfo] = {}  # live legs, for their events' fixed fields
        self._queue: asyncio.Queue[Record | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._draining = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="recorder")

    def put(self, record: Record) -> None:
        self._queue.put_nowait(record)

    async def write(self, statements: Statements) -> object:
        """Run ``statements`` in the writer's next transaction, wait until it is committed,
        and return what they returned; once the writer has stopped, in a transaction of its
        own."""
        if self._task is None or self._task.done() or self._draining:
            async with self._sessions.begin() as session:
                return await statements(session)
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Write(statements, done))
        return await done

    async def drain(self) -> None:
        """Write what is queued, then stop (shutdown)."""
        self._draining = True
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if isinstance(batch[0], LegOpened | LegChange | BindingChange):
                # Let the records of the next few milliseconds share this transaction: at
                # 100 calls/s a record used to get a transaction of its own, and the
                # worker's CPU per call was mostly statements' and commits' round trips
                # (bench.hotpath at 100 calls/s: 12.4 → 9.7-11.0 ms a call in all, event
                # p99 28 → 33-42 ms). A write someone awaits (Write) goes at once.
                await asyncio.sleep(LINGER)
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
        except Exception as exc:
            if len(records) == 1:
                log.exception("store.write_failed", record=type(records[0]).__name__)
                if isinstance(records[0], Write) and not records[0].done.done():
                    records[0].done.set_exception(exc)
                return
            # One bad record must not lose the others: write them one by one.
            for record in records:
                await self._write_batch([record])
            return
        self._forget_ended(records)
        for record in records:
            if isinstance(record, Write) and not record.done.done():
                record.done.set_result(record.result)
        if events:
            self._on_events(events, deliveries)

    async def _write(
        self, session: AsyncSession, records: list[Record]
    ) -> tuple[list[OutboxEvent], list[OutboxDelivery]]:
        """Write a batch as a few multi-row statements (SQLAlchemy Core, not the ORM's unit
        of work, which cost more than the SIP stack per call): calls, legs, leg updates,
        changes, events, deliveries. Parents go before children (foreign keys)."""
        conn = await session.connection()
        opened = [r for r in records if isinstance(r, LegOpened)]
        for leg_opened in opened:
            self._legs[leg_opened.leg.id] = _LegInfo.of(leg_opened.leg)
        if opened:
            # A call's second leg may come in a later batch: its call row is there already.
            calls = {r.leg.call_id: _call_values(r) for r in opened}
            await conn.execute(_NEW_CALLS[conn.dialect.name], list(calls.values()))
            await conn.execute(_LEGS.insert(), [_leg_values(r) | {"node_id": self._node_id}
                                                for r in opened])
        changes: list[LegChange] = []
        for record in records:
            match record:
                case LegOpened(leg=leg):
                    first = leg.history[0]
                    changes.append(LegChange(leg_id=leg.id, call_id=leg.call_id,
                                             state=first.state, sequence=1, at_us=first.at_us))
                case LegChange():
                    changes.append(record)
                case BindingChange(user_id=user_id, binding=binding, contact=contact):
                    await _write_binding(session, user_id, binding, contact)
                case Write(statements=statements):
                    record.result = await statements(session)
        await self._write_dialogs(conn, [r for r in records
                                         if isinstance(r, DialogsSaved | DialogsClosed)])
        if not changes:
            return [], []
        updates = _leg_updates((c for c in changes if c.sequence > 1), self._legs)
        if updates:
            await conn.execute(_UPDATE_LEG, updates)
        await conn.execute(_CHANGES.insert(), [_change_values(c) for c in changes])
        # Each change's call event, for every webhook of its user; after a HANGUP, its
        # summary, for the integrations the user activated.
        outbox = [row for change in changes for row in self._outbox_rows(change)]
        events = [values for values, _ in outbox]
        # RETURNING in parameter order gives each event its id, which orders the streams.
        event_ids = (await conn.execute(
            _EVENTS.insert().returning(_EVENTS.c.id, sort_by_parameter_order=True), events
        )).scalars().all()
        deliveries = [
            delivery_values(event_id, values["leg_id"], values["created_at"], webhook_id,
                            self._node_id)
            for event_id, (values, webhooks) in zip(event_ids, outbox, strict=True)
            for webhook_id in webhooks
        ]
        delivery_ids: Sequence[int] = []
        if deliveries:
            delivery_ids = (await conn.execute(
                _DELIVERIES.insert().returning(_DELIVERIES.c.id, sort_by_parameter_order=True),
                deliveries,
            )).scalars().all()
        return (
            [OutboxEvent(event_id, e["uid"], e["user_id"], e["leg_id"], e["payload"], e["kind"])
             for event_id, e in zip(event_ids, events, strict=True)],
            [OutboxDelivery(delivery_id, d["event_id"], d["webhook_id"], d["leg_id"],
                            d["created_at"])
             for delivery_id, d in zip(delivery_ids, deliveries, strict=True)],
        )

    async def _write_dialogs(self, conn: Any, records: list[DialogRecord]) -> None:
        """The last word on each call's dialogs: its saved ones replace the older, a close
        removes them."""
        if not records:
            return
        latest = {record.call_id: record for record in records}
        await conn.execute(delete(_DIALOGS).where(_DIALOGS.c.call_id.in_(list(latest))))
        now = datetime.now(UTC)
        rows = [
            {"call_id": call_id, "node_id": self._node_id, "position": position,
             "dialog": dialog_json(dialog), "saved_at": now}
            for call_id, record in latest.items() if isinstance(record, DialogsSaved)
            for position, dialog in enumerate(record.dialogs)
        ]
        if rows:
            await conn.execute(_DIALOGS.insert(), rows)

    async def end_open_legs(
        self, session: AsyncSession, now_us: int, node_id: str | None = None
    ) -> tuple[int, list[OutboxEvent], list[OutboxDelivery]]:
        """Legs a crash of a node (this one's by default) left open end with reason
        ``failed`` (HANGUP is reached exactly once: the rows are locked until commit, where
        the database can), written like any other leg change, events and deliveries
        included; the deliveries are this node's to send. Returns how many legs, and the
        events and deliveries written, for whoever sends them once committed (a takeover
        at runtime: at start the outbox is loaded anyway)."""
        last = (select(_CHANGES.c.leg_id, func.max(_CHANGES.c.sequence).label("last"))
                .group_by(_CHANGES.c.leg_id).subquery())
        rows = (await session.execute(
            select(LegRow, last.c.last).outerjoin(last, last.c.leg_id == LegRow.id)
            .where(LegRow.state != LegState.HANGUP.value,
                   LegRow.node_id == (node_id or self._node_id))
            .with_for_update(of=LegRow)
        )).all()
        changes: list[Record] = []
        for leg, sequence in rows:
            self._legs[leg.id] = _LegInfo.of_row(leg)
            changes.append(LegChange(leg_id=leg.id, call_id=leg.call_id, state=LegState.HANGUP,
                                     sequence=(sequence or 0) + 1, at_us=now_us,
                                     reason=HangupReason.FAILED))
        if not changes:
            return 0, [], []
        events, deliveries = await self._write(session, changes)
        self._forget_ended(changes)
        return len(changes), events, deliveries

    def _outbox_rows(self, change: LegChange) -> list[tuple[dict[str, Any], list[str]]]:
        """The outbox rows of a change, each with the webhooks it goes to."""
        info = self._legs[change.leg_id]
        held = info.held.after(change.state.value, change.at_us)
        if change.other is not None:  # a transfer: from now on, its events show the new party
            info = self._legs[change.leg_id] = replace(info.with_other(change.other), held=held)
        elif held is not info.held:
            info = self._legs[change.leg_id] = replace(info, held=held)
        reason = change.reason.value if change.reason else None
        rows = [(event_values(info, info.user_id, change.state.value, change.sequence,
                              change.at_us, reason),
                 self.subscriptions.for_user(info.tenant_id, info.extension, info.user_id))]
        summary_webhooks = self.subscriptions.summaries_for(info.user_id)
        if change.state is LegState.HANGUP and summary_webhooks:
            answered = change.answered_us if change.answered_us is not None \
                else info.answered_us
            summary = summary_event(info, change.sequence + 1, info.created_us, answered,
                                    change.at_us, reason or HangupReason.FAILED.value, held)
            rows.append((outbox_values("summary", info.tenant_id, info.user_id, info.id,
                                       change.sequence + 1, summary), summary_webhooks))
        return rows

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
    created_us: int
    answered_us: int | None = None  # known from the start only for a stored leg
    held: HeldTime = NOT_HELD  # (a stored leg's is not known: counted from now)

    @classmethod
    def of(cls, leg: Leg) -> _LegInfo:
        return cls(leg.id, leg.call_id, leg.tenant_id, leg.user_id, leg.extension,
                   leg.direction.value, leg.caller.number, leg.caller.name,
                   leg.callee.number, leg.callee.name, leg.created_us)

    def with_other(self, other: Party) -> _LegInfo:
        """The leg with a new other party: the callee of an OUT leg, the caller of an IN."""
        if self.direction == Direction.OUT.value:
            return replace(self, callee_number=other.number, callee_name=other.name)
        return replace(self, caller_number=other.number, caller_name=other.name)

    @classmethod
    def of_row(cls, row: LegRow) -> _LegInfo:
        answered = row.answered_at
        return cls(row.id, row.call_id, row.tenant_id, row.user_id, row.extension,
                   row.direction, row.caller_number, row.caller_name, row.callee_number,
                   row.callee_name, _us(row.created_at),
                   _us(answered) if answered is not None else None)


_CALLS, _LEGS, _CHANGES, _EVENTS, _DELIVERIES, _DIALOGS, _BINDINGS = (
    Base.metadata.tables[model.__tablename__]
    for model in (CallRow, LegRow, LegChangeRow, EventRow, DeliveryRow, DialogRow, BindingRow)
)

_PARTY_COLUMNS = ("caller_number", "caller_name", "callee_number", "callee_name")

# One statement shape for every leg update of a batch (executemany): the leg's last state,
# its first answer (not a resume from hold), once it hangs up, the end and the reason, and
# after a transfer, its new other party.
_UPDATE_LEG = (
    update(_LEGS)
    .where(_LEGS.c.id == bindparam("b_id"))
    .values(state=bindparam("b_state"),
            # Typed, so that SQLite stores them as the INSERT does (one text format).
            answered_at=func.coalesce(bindparam("b_answered_at", type_=_LEGS.c.answered_at.type),
                                      _LEGS.c.answered_at),
            ended_at=func.coalesce(bindparam("b_ended_at", type_=_LEGS.c.ended_at.type),
                                   _LEGS.c.ended_at),
            reason=func.coalesce(bindparam("b_reason"), _LEGS.c.reason),
            **{column: func.coalesce(bindparam(f"b_{column}"), _LEGS.c[column])
               for column in _PARTY_COLUMNS})
)


# Each database's own INSERT, for its ON CONFLICT clause.
_INSERTS: dict[str, Callable[..., Any]] = {"postgresql": postgresql.insert,
                                          "sqlite": sqlite.insert}
# INSERT that skips calls whose row exists (built once: it is on the hot path).
_NEW_CALLS: dict[str, Insert] = {
    name: insert(_CALLS).on_conflict_do_nothing() for name, insert in _INSERTS.items()
}


def _leg_updates(changes: Iterable[LegChange],
                 legs: Mapping[str, _LegInfo]) -> list[dict[str, Any]]:
    """One parameter set per leg, folding the batch's changes to it in order."""
    folded: dict[str, dict[str, Any]] = {}
    for change in changes:
        values = folded.setdefault(change.leg_id, {
            "b_id": change.leg_id, "b_answered_at": None, "b_ended_at": None, "b_reason": None,
            **{f"b_{column}": None for column in _PARTY_COLUMNS}})
        values["b_state"] = change.state.value
        if change.other is not None:
            end = "callee" if legs[change.leg_id].direction == Direction.OUT.value else "caller"
            values[f"b_{end}_number"] = change.other.number
            values[f"b_{end}_name"] = change.other.name
        if change.answered_us is not None:  # the domain's rule (calls/leg.py), not ours
            values["b_answered_at"] = _at(change.answered_us)
        if change.state is LegState.HANGUP:
            values["b_ended_at"] = _at(change.at_us)
            values["b_reason"] = change.reason.value if change.reason else None
    return list(folded.values())


def _call_values(record: LegOpened) -> dict[str, Any]:
    leg = record.leg
    return {"id": leg.call_id, "tenant_id": leg.tenant_id, "kind": record.kind.value,
            "created_at": _at(leg.created_us)}


def _change_values(change: LegChange) -> dict[str, Any]:
    return {"leg_id": change.leg_id, "sequence": change.sequence, "state": change.state.value,
            "reason": change.reason.value if change.reason else None, "at_us": change.at_us}


def _leg_values(record: LegOpened) -> dict[str, Any]:
    leg = record.leg
    return {
        "id": leg.id,
        "call_id": leg.call_id,
        "tenant_id": leg.tenant_id,
        "user_id": leg.user_id,
        "extension": leg.extension,
        "direction": leg.direction.value,
        "state": LegState.RINGING.value,
        "caller_number": leg.caller.number,
        "caller_name": leg.caller.name,
        "callee_number": leg.callee.number,
        "callee_name": leg.callee.name,
        "created_at": _at(leg.created_us),
    }


async def _write_binding(
    session: AsyncSession, user_id: str, binding: Binding | None, contact: str | None
) -> None:
    """One statement per change, in SQL rather than the ORM's unit of work (which would
    need the users table, a directory model, to order its flush)."""
    if binding is None:
        query = delete(_BINDINGS).where(_BINDINGS.c.user_id == user_id)
        if contact is not None:
            query = query.where(_BINDINGS.c.contact == contact)
        await session.execute(query)
        return
    values = {"source_host": binding.source[0], "source_port": binding.source[1],
              "expires_at": datetime.fromtimestamp(binding.expires_at, UTC),
              "user_agent": binding.user_agent, "path": list(binding.path) or None}
    dialect = (await session.connection()).dialect.name
    upsert = _INSERTS[dialect](_BINDINGS).values(user_id=user_id, contact=binding.contact,
                                                 **values)
    await session.execute(upsert.on_conflict_do_update(
        index_elements=[_BINDINGS.c.user_id, _BINDINGS.c.contact], set_=values))
