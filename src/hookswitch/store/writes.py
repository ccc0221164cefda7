"""Writes that other processes ask the one writer for.

A running server writes nothing to the database itself: SQLite takes one writer at a time,
and that writer is the recorder in the events worker (events/worker.py). A component that
must store something and know it is stored (an idempotent answer, later an activation's
tokens) sends a ``WriteCommand``, a plain picklable value whose ``run`` the writer executes
in its next transaction, and awaits the result.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class WriteCommand(Protocol):
    """``run`` executes in the one writer's transaction. A command that sets a class
    attribute ``changes_subscriptions = True`` makes the writer reload which webhooks get
    which users' events once it is committed."""

    async def run(self, session: AsyncSession) -> object: ...


class Writer(Protocol):
    async def call(self, command: WriteCommand) -> object: ...


class DirectWriter:
    """Runs each command in a transaction of its own: where there is no events worker
    (the command line, tests of the API alone)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def call(self, command: WriteCommand) -> object:
        async with self._sessions.begin() as session:
            return await command.run(session)
