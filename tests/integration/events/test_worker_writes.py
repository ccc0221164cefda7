"""Writes the server asks the one writer (the events worker process) for, and waits on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.database import query
from harness.server import TENANT, user_id_for
from hookswitch.calls.ids import UserId
from hookswitch.calls.registrations import Binding
from hookswitch.events.recorder import BindingChange
from hookswitch.events.sender import RetryPolicy
from hookswitch.events.worker import EventsWorker, WorkerUnavailable
from hookswitch.store.db import make_engine, migrate
from hookswitch.store.idempotency import SaveAnswer
from tests.integration.test_provisioning import apply, provisioning

JANE = UserId(user_id_for(TENANT, "210"))


async def rows(database: str, sql: str) -> list[dict[str, object]]:
    return await asyncio.to_thread(query, database, sql)


def answer(at: object) -> SaveAnswer:
    return SaveAnswer(JANE, "key-1", "f" * 64, 202, "{}", at)  # type: ignore[arg-type]


@pytest.fixture
async def worker(tmp_path: Path, database: str) -> AsyncIterator[EventsWorker]:
    await apply(database, provisioning(tmp_path))
    engine = make_engine(database)
    await migrate(engine)
    await engine.dispose()
    worker = EventsWorker(database, RetryPolicy(), lambda events: None)
    await worker.start()
    yield worker
    await worker.stop()


async def test_a_write_is_committed_after_every_record_sent_before_it(
    worker: EventsWorker, database: str
) -> None:
    worker.put(BindingChange(JANE, Binding(user_id=JANE, contact="sip:210@127.0.0.1:5070",
                                           source=("127.0.0.1", 5070),
                                           expires_at=time.time() + 3600), None))
    assert await worker.call(answer(datetime.now(UTC))) is None
    # Both are committed once the call returns: the record first, in order.
    assert len(await rows(database, "SELECT id FROM bindings")) == 1
    assert [row["key"] for row in await rows(database, "SELECT key FROM idempotency_keys")] == [
        "key-1"]


async def test_a_failed_write_is_an_error_not_a_hang(
    worker: EventsWorker, database: str
) -> None:
    with pytest.raises(WorkerUnavailable, match="the write failed"):
        await worker.call(answer("not a time"))
    assert await worker.call(answer(datetime.now(UTC))) is None  # the writer goes on
    assert len(await rows(database, "SELECT key FROM idempotency_keys")) == 1
