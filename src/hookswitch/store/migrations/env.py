"""Alembic environment: runs on the connection handed over by ``store.db.migrate``.

Upgrading needs no table models. Comparing the database with them (autogenerate, the
migration tests) passes ``target_metadata`` in too: ``hookswitch.schema`` gathers every
capability's tables, and the store, below those capabilities, does not import them.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - alembic CLI use is not supported
    raise RuntimeError("run migrations through hookswitch (store.db.migrate)")
context.configure(connection=connection,
                  target_metadata=context.config.attributes.get("target_metadata"),
                  render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
