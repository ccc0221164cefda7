"""Migrations, on SQLite and on PostgreSQL (HOOKSWITCH_TEST_DB=postgresql)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.server import TENANT
from hookswitch.directory.provisioning import user_id_for
from hookswitch.schema import metadata
from hookswitch.store.db import MIGRATIONS, make_engine
from tests.support.api import c2d, running_api


async def _alembic(engine: AsyncEngine, action: str, revision: str) -> None:
    def run(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def _rows(database: str, sql: str) -> list[dict[str, object]]:
    engine = make_engine(database)
    try:
        async with engine.connect() as connection:
            return [dict(row._mapping) for row in await connection.execute(text(sql))]
    finally:
        await engine.dispose()


async def test_0005_fingerprints_new_keys_and_keys_stored_before_it_still_replay(
    tmp_path: Path, database: str
) -> None:
    engine = make_engine(database)
    await _alembic(engine, "upgrade", "0004")
    stored = {"call_leg_id": "leg-from-before", "call_id": "call-from-before",
              "state": "RINGING"}
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO idempotency_keys (user_id, key, created_at, status, body) "
                 "VALUES (:user_id, 'old-key', :now, 202, :body)"),
            {"user_id": user_id_for(TENANT, "210"), "now": datetime.now(UTC),
             "body": json.dumps(stored)},
        )
    await engine.dispose()

    async with running_api(tmp_path, database) as api:  # migrates to the newest revision
        # No fingerprint: the old behaviour, the stored answer for the key, whatever the body.
        replay = await api.post(c2d("+32470123456"), **{"Idempotency-Key": "old-key"})
        assert (replay.status_code, replay.json()) == (202, stored)
        assert api.commands == []
        assert (await api.post(c2d(), **{"Idempotency-Key": "new-key"})).status_code == 202

    rows = {row["key"]: row["fingerprint"] for row in await _rows(
        database, "SELECT key, fingerprint FROM idempotency_keys")}
    assert rows["old-key"] is None
    assert isinstance(rows["new-key"], str) and len(rows["new-key"]) == 64


async def test_0005_downgrades_and_upgrades_again_and_every_table_matches_the_models(
    tmp_path: Path, database: str
) -> None:
    engine = make_engine(database)
    try:
        def columns(connection: Connection) -> set[str]:
            return {column["name"] for column in inspect(connection).get_columns(
                "idempotency_keys")}

        await _alembic(engine, "upgrade", "head")
        await _alembic(engine, "downgrade", "0004")
        async with engine.connect() as connection:
            assert "fingerprint" not in await connection.run_sync(columns)
        await _alembic(engine, "upgrade", "head")
        async with engine.connect() as connection:
            assert "fingerprint" in await connection.run_sync(columns)

        def differences(connection: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(connection), metadata))

        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()
