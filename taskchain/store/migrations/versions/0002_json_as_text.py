"""JSON values kept as exact text: the four JSON columns become TEXT.

Revision ID: 0002
Revises: 0001

SQLite gives a column declared JSON NUMERIC affinity, so a bare number such as 10**100 was
stored as the REAL 1e+100 (see `models.JsonText`). SQLite cannot change a column's type, so
`chain` and `step` are rebuilt (sqlite.org/lang_altertable.html: create, copy, drop, rename;
foreign keys are off around the whole upgrade, see `schema._sqlite_lock`). Values already
mangled cannot be recovered (a big integer stays the float it became, 5.0 stays 5); every
other value is carried over exactly (`_carry`), and from then on every value is exact.
PostgreSQL's `json` kept the exact text, so there the columns only change type.

Written in SQL rather than with `batch_alter_table`, whose copy would CAST a REAL to TEXT
with 15 significant digits and lose the last bits of a float.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import CreateIndex, CreateTable

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON_COLUMNS = {"chain": ("config", "result"), "step": ("params", "result")}
STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")
#: What a row copied from a table that lacks the column gets (none has lacked one so far,
#: but a store from a pre-release build may).
FILL = {"attempt": 1, "attempts": 0, "step_count": 0, "cancel_requested": False, "description": ""}


class MigrationError(Exception):
    """The rebuild would lose something; the whole upgrade is rolled back."""


def _tables() -> tuple[sa.Table, sa.Table]:
    """Revision 0001's tables with TEXT for JSON: this revision's target, frozen here."""
    meta = sa.MetaData()
    status = sa.Enum(*STATUSES, name="status")
    time = sa.DateTime(timezone=True)
    chain = sa.Table(
        "chain",
        meta,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("status", status, nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("created_at", time, nullable=False),
        sa.Column("started_at", time),
        sa.Column("finished_at", time),
        sa.Column("result", sa.Text()),
        sa.Column("error", sa.String()),
        sa.Column("step_count", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Index("ix_chain_created", "created_at"),
        sa.Index("ix_chain_status_created", "status", "created_at"),
        sa.Index("ix_chain_type_created", "type", "created_at"),
    )
    step = sa.Table(
        "step",
        meta,
        sa.Column(
            "chain_id", sa.String(), sa.ForeignKey("chain.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("index", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("status", status, nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", time),
        sa.Column("finished_at", time),
        sa.Column("result", sa.Text()),
        sa.Column("error", sa.String()),
        sa.Column("progress", sa.String()),
        sa.Column("worker", sa.String()),
        sa.Column("lease_expires_at", time),
        sa.Column("dispatched_at", time),
    )
    return chain, step  # parents first: a step refers to its chain


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for table in _tables():
            _rebuild(bind, table)
    else:
        # json::text is the exact text once written.
        for name_of_table, columns in JSON_COLUMNS.items():
            with op.batch_alter_table(name_of_table) as batch:
                for name in columns:
                    batch.alter_column(
                        name,
                        type_=sa.Text(),
                        existing_type=sa.JSON(),
                        postgresql_using=f'"{name}"::text',
                    )


def downgrade() -> None:
    raise NotImplementedError("JSON columns do not go back: they would mangle numbers again")


def _rebuild(bind: Any, table: sa.Table) -> None:
    declared = {row[1] for row in bind.exec_driver_sql(f'PRAGMA table_info("{table.name}")')}
    new = f"_taskchain_new_{table.name}"
    ddl = str(CreateTable(table).compile(dialect=bind.dialect)).strip()
    head = f"CREATE TABLE {table.name} ("
    if not ddl.startswith(head):
        raise MigrationError(f"unexpected DDL for table {table.name}")
    bind.exec_driver_sql(f"CREATE TABLE {new} (" + ddl[len(head) :])
    names: list[str] = []
    values: list[str] = []
    params: list[Any] = []
    for column in table.columns:
        if column.name in declared:
            names.append(f'"{column.name}"')
            json_column = column.name in JSON_COLUMNS[table.name]
            values.append(_carry(column.name) if json_column else f'"{column.name}"')
        elif column.name in FILL:
            names.append(f'"{column.name}"')
            values.append("?")
            params.append(FILL[column.name])
        elif not column.nullable:
            raise MigrationError(f"column {table.name}.{column.name} has no value to fill in")
    bind.exec_driver_sql(
        f"INSERT INTO {new} ({', '.join(names)}) SELECT {', '.join(values)} FROM {table.name}",
        tuple(params),
    )
    bind.exec_driver_sql(f"DROP TABLE {table.name}")
    bind.exec_driver_sql(f"ALTER TABLE {new} RENAME TO {table.name}")
    for index in table.indexes:
        bind.exec_driver_sql(str(CreateIndex(index).compile(dialect=bind.dialect)))


def _carry(name: str) -> str:
    """The old value as JSON text. Text (objects, arrays, strings, true/false/null) and
    integers are carried exactly. A REAL is written with 17 significant digits, which read
    back as the very same double; infinities (what a huge integer became) as JSON's."""
    col = f'"{name}"'
    return (
        f"CASE typeof({col}) WHEN 'real' THEN CASE "
        f"WHEN {col} > 1.7976931348623157e308 THEN 'Infinity' "
        f"WHEN {col} < -1.7976931348623157e308 THEN '-Infinity' "
        f"ELSE printf('%!.17g', {col}) END ELSE {col} END"
    )
