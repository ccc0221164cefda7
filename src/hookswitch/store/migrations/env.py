"""Alembic environment: runs on the connection handed over by ``store.db.migrate``."""

from __future__ import annotations

from alembic import context

from hookswitch.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - alembic CLI use is not supported
    raise RuntimeError("run migrations through hookswitch (store.db.migrate)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
