"""A dead node's calls and deliveries, taken over by a survivor (docs/CLUSTER.md).

``TakeOver`` is a write command (store/writes.py) that the survivor's one writer runs in one
transaction. It is exclusive in PostgreSQL, not in Redis: a node holds the session-level
advisory lock ``advisory_key(node_id)`` for as long as it lives (store/lock.py), so
``pg_try_advisory_xact_lock`` on that key succeeds only once the database has seen the
node's connection close, and no other survivor (nor the node restarting) can hold it
meanwhile. A node whose Redis heartbeat stopped while it still runs (paused, cut off from
Redis only) keeps its lock, and is not taken over.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookswitch.calls.dialogs import Dialog
from hookswitch.events.models import DeliveryRow
from hookswitch.events.outbox import OutboxDelivery, OutboxEvent, Subscriptions
from hookswitch.events.recorder import Recorder
from hookswitch.store.dialogs import take_orphaned_dialogs
from hookswitch.store.lock import advisory_key


@dataclass(frozen=True, slots=True)
class TakenOver:
    """What a takeover found, once committed: the dialogs to end with BYE, the HANGUP
    events written (and their deliveries, this node's), and how many of the dead node's
    pending deliveries are this node's now."""

    dead: str
    dialogs: list[Dialog]
    legs: int
    events: list[OutboxEvent]
    deliveries: list[OutboxDelivery]
    moved: int


@dataclass(frozen=True, slots=True)
class TakeOver:
    """Run by the events worker of node ``me``; None while ``dead`` still holds its lock
    (alive for the database, or already restarted): ask again later."""

    dead: str
    me: str
    at_us: int

    async def run(self, session: AsyncSession) -> TakenOver | None:
        held = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                    {"key": advisory_key(self.dead)})
        if not held:
            return None
        # A second survivor waits for this transaction (the lock above), then finds the
        # legs ended, the dialogs gone and no delivery left: exactly once.
        subscriptions = await Subscriptions.load(session)
        # A recorder of this node's, for its way of writing a leg change with its events;
        # only on this session (its session maker is never used here).
        recorder = Recorder(async_sessionmaker(session.bind), subscriptions, node_id=self.me)
        legs, events, deliveries = await recorder.end_open_legs(session, self.at_us,
                                                                 node_id=self.dead)
        moved = await session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.node_id == self.dead, DeliveryRow.status == "pending")
            .values(node_id=self.me))
        dialogs = await take_orphaned_dialogs(session, self.dead)
        return TakenOver(self.dead, dialogs, legs, events, deliveries,
                         moved.rowcount)  # type: ignore[attr-defined]
