"""Alembic's environment: migrate the connection taskchain hands over, in its transaction.

taskchain takes the store's write lock (SQLite) or an advisory lock (PostgreSQL) and begins
the transaction itself, so every revision of one upgrade commits together or not at all.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from taskchain.store import models  # noqa: F401  (registers the tables, for autogenerate)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `taskchain db upgrade`, which supplies the store")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters most things by copying the table: let `op.batch_alter_table` do that.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
