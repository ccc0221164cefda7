"""One server per database (per node): an exclusive lock taken before any data is touched.

A second ``hookswitch serve`` on the same database used to apply provisioning (deleting a
webhook the first one was using) and close the first one's live legs as ``failed`` before it
noticed that its HTTP port was taken. Now it takes this lock first and stops if it cannot.

- SQLite: ``flock`` on a file beside the database (``hookswitch.db.lock``). The kernel drops
  it when the process dies, so a kill -9 never leaves a stale lock behind.
- PostgreSQL: a session-level advisory lock on a key made from the node id, held by one
  connection for the server's lifetime (dropped by the server when the connection ends).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hookswitch.store.db import normalise_url

DEFAULT_NODE = "default"
LOCK_WAIT = 3.0  # seconds a start waits for its node's lock before it refuses


class DatabaseInUse(Exception):
    """Another server holds the database (for this node id)."""


def advisory_key(node_id: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``, per node id."""
    digest = hashlib.sha256(f"hookswitch:node:{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None (another database, or ``:memory:``)."""
    url = normalise_url(url)
    if not url.startswith("sqlite+aiosqlite:///"):
        return None
    path = url.removeprefix("sqlite+aiosqlite:///")
    return None if path in ("", ":memory:") else Path(path)


@contextlib.asynccontextmanager
async def one_at_a_time(engine: AsyncEngine, name: str) -> AsyncIterator[None]:
    """A section that one process at a time runs on a PostgreSQL database (the nodes of a
    cluster migrating together); nothing on SQLite, which has one server."""
    if engine.dialect.name != "postgresql":
        yield
        return
    key = advisory_key(f"section:{name}")
    async with engine.connect() as connection:
        await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        await connection.commit()
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            await connection.commit()


class DatabaseLock:
    def __init__(self, engine: AsyncEngine, url: str, node_id: str = DEFAULT_NODE) -> None:
        self._engine = engine
        self._url = url
        self._node_id = node_id
        self._fd: int | None = None
        self._connection: AsyncConnection | None = None

    async def acquire(self) -> None:
        path = sqlite_path(self._url)
        if path is not None:
            self._lock_file(path.with_name(path.name + ".lock"))
        elif self._engine.dialect.name == "postgresql":
            await self._lock_advisory()

    def _lock_file(self, lock_path: Path) -> None:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseInUse(
                f"the database {lock_path.with_suffix('')} is in use by another hookswitch "
                f"server (lock file {lock_path})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    async def _lock_advisory(self) -> None:
        connection = await self._engine.connect()
        try:
            # Waits a little: a survivor taking this node over after a crash holds the key
            # for one short transaction (events/takeover.py), which a quick restart can
            # meet. Another live server with this node id holds it for good: refused after.
            await connection.execute(text("SELECT set_config('lock_timeout', :wait, false)"),
                                     {"wait": f"{int(LOCK_WAIT * 1000)}ms"})
            await connection.execute(text("SELECT pg_advisory_lock(:key)"),
                                     {"key": advisory_key(self._node_id)})
            taken = True
        except DBAPIError:  # lock_timeout: 55P03 lock_not_available
            taken = False
            await connection.rollback()
        await connection.execute(text("RESET lock_timeout"))
        await connection.commit()  # the lock is per session; end the implicit transaction
        if not taken:
            await connection.close()
            raise DatabaseInUse(
                f"the database is in use by another hookswitch server with node id "
                f"{self._node_id!r} (PostgreSQL advisory lock {advisory_key(self._node_id)})"
            )
        self._connection = connection

    async def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                # Unlock explicitly: closing only returns the connection to the pool.
                await self._connection.scalar(
                    text("SELECT pg_advisory_unlock(:key)"),
                    {"key": advisory_key(self._node_id)},
                )
                await self._connection.close()
            self._connection = None
