"""A dead node's legs, deliveries and dialogs taken over by a survivor (events/takeover.py),
on PostgreSQL: not while the node holds its lock, and once only when two survivors try."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from harness.database import fresh_database
from harness.server import OTHER_TENANT, TENANT, user_id_for
from hookswitch.calls.call import CallKind
from hookswitch.calls.dialogs import Dialog, DialogsSaved
from hookswitch.calls.ids import CallId, LegId, TenantId, UserId
from hookswitch.calls.leg import Direction, Leg, LegChange, LegState, Party
from hookswitch.calls.switch import LegOpened
from hookswitch.events.outbox import Subscriptions
from hookswitch.events.recorder import Recorder
from hookswitch.events.takeover import TakenOver, TakeOver
from hookswitch.store.db import make_engine, session_factory
from hookswitch.store.lock import DatabaseInUse, DatabaseLock, advisory_key
from tests.integration.test_provisioning import apply, provisioning

WEBHOOK = '[[tenants.webhooks]]\nurl = "http://127.0.0.1:9/events"\n\n'


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path, "postgresql") as url:  # advisory locks: PostgreSQL only
        yield url


@pytest.fixture
async def sessions(tmp_path: Path, database: str
                   ) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    other = f'[[tenants]]\nid = "{OTHER_TENANT}"'
    await apply(database, provisioning(tmp_path, **{other: WEBHOOK + other}))
    engine = make_engine(database)
    yield session_factory(engine)
    await engine.dispose()


def dialog(tag: str) -> Dialog:
    return Dialog(sip_call_id=f"call-{tag}", local_uri=f"<sip:hs@127.0.0.1>;tag={tag}",
                  remote_uri="<sip:210@127.0.0.1>;tag=x", remote_target="sip:210@127.0.0.1:5070",
                  route_set=(), next_cseq=2, next_hop=("127.0.0.1", 5070))


async def answered_call_on_n1(sessions: async_sessionmaker[AsyncSession]) -> LegId:
    """What n1's writer had committed when it died: an answered leg with its events
    (pending: the webhook never answered) and the call's two dialogs."""
    async with sessions() as session:
        recorder = Recorder(sessions, await Subscriptions.load(session), node_id="n1")
    recorder.start()
    now = int(time.time() * 1_000_000)
    leg = Leg(id=LegId(str(uuid.uuid4())), call_id=CallId(str(uuid.uuid4())),
              tenant_id=TenantId(TENANT), user_id=UserId(user_id_for(TENANT, "210")),
              extension="210", direction=Direction.OUT, caller=Party(number="210", name="Jane"),
              callee=Party(number="200", name="John"), created_us=now)
    recorder.put(LegOpened(leg, CallKind.CLICK_TO_DIAL))
    recorder.put(LegChange(leg_id=leg.id, call_id=leg.call_id, state=LegState.ACTIVE,
                           sequence=2, at_us=now + 1, answered_us=now + 1))
    recorder.put(DialogsSaved(call_id=leg.call_id, dialogs=(dialog("a"), dialog("b"))))
    await recorder.drain()
    return leg.id


async def take_over(sessions: async_sessionmaker[AsyncSession], me: str) -> TakenOver | None:
    async with sessions.begin() as session:
        return await TakeOver("n1", me, int(time.time() * 1_000_000)).run(session)


async def rows(sessions: async_sessionmaker[AsyncSession], sql: str) -> list[tuple[object, ...]]:
    async with sessions() as session:
        return [tuple(row) for row in (await session.execute(text(sql))).all()]


async def lock_awaited(sessions: async_sessionmaker[AsyncSession], timeout: float = 5) -> None:
    """Until PostgreSQL shows a session waiting for an advisory lock."""
    deadline = time.monotonic() + timeout
    while not await rows(sessions, "SELECT 1 FROM pg_locks "
                         "WHERE locktype = 'advisory' AND NOT granted"):
        assert time.monotonic() < deadline, "nobody waits for the lock"
        await asyncio.sleep(0.02)  # the polling period of a condition


async def test_a_node_that_holds_its_lock_is_not_taken_over(
    sessions: async_sessionmaker[AsyncSession], database: str
) -> None:
    await answered_call_on_n1(sessions)
    engine = make_engine(database)
    lock = DatabaseLock(engine, database, "n1")
    await lock.acquire()  # n1 lives for PostgreSQL (paused, or cut off from Redis only)
    try:
        assert await take_over(sessions, "n2") is None
    finally:
        await lock.release()
        await engine.dispose()
    assert await rows(sessions, "SELECT state FROM legs") == [("ACTIVE",)]
    assert len(await rows(sessions, "SELECT id FROM dialogs WHERE node_id = 'n1'")) == 2


async def test_two_survivors_take_a_dead_node_over_exactly_once(
    sessions: async_sessionmaker[AsyncSession]
) -> None:
    leg = await answered_call_on_n1(sessions)
    results = await asyncio.gather(take_over(sessions, "n2"), take_over(sessions, "n3"))
    taken = [result for result in results if result is not None and result.legs]
    assert len(taken) == 1, results
    [winner] = taken
    assert (winner.legs, len(winner.dialogs), winner.moved) == (1, 2, 2)
    [hangup] = winner.events  # one leg, no summary subscribed: its HANGUP only
    assert '"HANGUP"' in hangup.payload and '"failed"' in hangup.payload
    assert len(winner.deliveries) == 1
    # The loser, then or later, finds nothing left.
    assert all(result is None or not (result.legs or result.dialogs or result.moved)
               for result in results if result is not winner)
    again = await take_over(sessions, "n3")
    assert again is not None and (again.legs, again.dialogs, again.moved) == (0, [], 0)
    assert await rows(sessions, f"SELECT state, reason FROM leg_changes WHERE leg_id = '{leg}' "
                      "ORDER BY sequence") == [("RINGING", None), ("ACTIVE", None),
                                               ("HANGUP", "failed")]
    me = "n2" if results[0] is winner else "n3"
    assert await rows(sessions, "SELECT DISTINCT node_id, status FROM deliveries") == [
        (me, "pending")]
    assert await rows(sessions, "SELECT id FROM dialogs") == []


async def test_a_restart_waits_for_a_takeover_in_progress_and_another_live_node_is_refused(
    sessions: async_sessionmaker[AsyncSession], database: str
) -> None:
    engine = make_engine(database)
    restarted, second = (DatabaseLock(engine, database, "n1") for _ in range(2))
    try:
        async with sessions.begin() as session:  # a survivor's takeover transaction
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                  {"key": advisory_key("n1")})
            restart = asyncio.create_task(restarted.acquire())
            await lock_awaited(sessions)
            assert not restart.done()
        await asyncio.wait_for(restart, 5)  # got it once the transaction committed
        began = time.monotonic()
        with pytest.raises(DatabaseInUse):  # n1 is up: a second n1 is refused, bounded
            await second.acquire()
        assert time.monotonic() - began < 5
    finally:
        await second.release()
        await restarted.release()
        await engine.dispose()
