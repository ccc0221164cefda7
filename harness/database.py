"""A fresh database per test: SQLite in the test's folder, or a new PostgreSQL database
when HOOKSWITCH_TEST_DB=postgresql (127.0.0.1:5432, trust auth)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

from hookswitch.store.db import make_engine

PG_ADMIN = os.environ.get("HOOKSWITCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def backend() -> str:
    return os.environ.get("HOOKSWITCH_TEST_DB", "sqlite")


@contextmanager
def fresh_database(folder: Path, kind: str | None = None) -> Iterator[str]:
    """``kind`` "postgresql" or "sqlite"; by default what HOOKSWITCH_TEST_DB says."""
    if (kind or backend()) != "postgresql":
        yield f"sqlite+aiosqlite:///{folder / 'hookswitch.db'}"
        return
    name = f"hs_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def query(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Run one read query (tests look at what the server recorded)."""

    async def run() -> list[dict[str, Any]]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(text(sql), params)
                return [dict(row._mapping) for row in result]
        finally:
            await engine.dispose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    # Called where a loop runs already (an async test, Playwright's sync API): run the
    # query on a loop of its own in another thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
