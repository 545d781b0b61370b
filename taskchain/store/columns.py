"""Bring an existing store up to the tables' columns: add the nullable columns it lacks.

Not a migration system: it only adds columns that later versions appended to a table as
nullable (so old rows read as None). Anything else (a new NOT NULL column, a type change)
needs a real migration, and this refuses to guess.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, Engine, Table, inspect, text
from sqlmodel import SQLModel

from taskchain.errors import StoreUnavailable


def missing_columns(bind: Engine | Connection) -> dict[str, list[Column[object]]]:
    """Per table that exists, the model's columns it lacks."""
    inspector = inspect(bind)
    existing_tables = set(inspector.get_table_names())
    out: dict[str, list[Column[object]]] = {}
    for name, table in SQLModel.metadata.tables.items():
        if name not in existing_tables:
            continue
        present = {c["name"] for c in inspector.get_columns(name)}
        lacking = [c for c in table.columns if c.name not in present]
        if lacking:
            out[name] = lacking
    return out


def add_missing_columns(engine: Engine, *, write_options: dict[str, object]) -> list[str]:
    """Add every missing nullable column; return `table.column` for each one added.

    Safe when several processes open an old store at once: on SQLite the check and the
    ALTER run in one write transaction (BEGIN IMMEDIATE, via `write_options`), and on
    PostgreSQL `ADD COLUMN IF NOT EXISTS` makes the loser of a race a no-op.
    """
    if not missing_columns(engine):  # the common case: a plain read, no lock taken
        return []
    added: list[str] = []
    writer = engine.execution_options(**write_options)
    with writer.begin() as conn:
        # Look again under the lock: another process may have added them meanwhile.
        for name, columns in missing_columns(conn).items():
            table = SQLModel.metadata.tables[name]
            for column in columns:
                conn.execute(text(_add_column_sql(engine, table, column)))
                added.append(f"{name}.{column.name}")
    return added


def _add_column_sql(engine: Engine, table: Table, column: Column[object]) -> str:
    if not column.nullable or column.primary_key:
        raise StoreUnavailable(
            str(engine.url),  # str() of a URL masks its password
            f"table {table.name!r} lacks column {column.name!r}, which cannot be added in "
            "place (it is not nullable)",
        )
    preparer = engine.dialect.identifier_preparer
    kind = column.type.compile(dialect=engine.dialect)
    exists = " IF NOT EXISTS" if engine.dialect.name == "postgresql" else ""
    return (
        f"ALTER TABLE {preparer.format_table(table)} "
        f"ADD COLUMN{exists} {preparer.format_column(column)} {kind}"
    )
