"""One in-place upgrade: JSON columns declared `JSON` by taskchain <= 0.x become TEXT.

SQLite gives a column declared JSON NUMERIC affinity, so a bare number such as 10**100 was
stored as the REAL 1e+100 (see `models.JsonText`). Opening such a store rebuilds its `chain`
and `step` tables with TEXT columns, in one transaction, keeping every row. Values already
mangled cannot be recovered (a big integer stays the float it became, 5.0 stays 5); every
other value is carried over exactly, and from then on every value is stored exactly.

On PostgreSQL the old `json` columns kept the exact text, so they only change type. Other
databases are left as they are. (Schema versions and `taskchain db upgrade` come later.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.schema import CreateIndex, CreateTable

from taskchain.store.models import ChainRecord, JsonText, StepRecord

# Parents first: a step refers to its chain.
_TABLES: tuple[Table, ...] = (ChainRecord.__table__, StepRecord.__table__)  # type: ignore[attr-defined]


class UpgradeError(Exception):
    """The upgrade could not run; the store is left as it was."""


def _json_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, JsonText)]


def upgrade(engine: Engine) -> bool:
    """Bring the JSON columns to TEXT if they are not yet; True when something changed."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        return _upgrade_sqlite(engine)
    if dialect == "postgresql":
        with engine.connect() as conn:
            if not _postgres_stale(conn):
                return False
        with engine.begin() as conn:
            return _upgrade_postgres(conn)
    return False


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_declared(conn: Any, table: str) -> dict[str, str]:
    rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    return {row[1]: str(row[2]).upper() for row in rows}


def _sqlite_stale(db: Any, table: Table) -> dict[str, str] | None:
    """The table's declared column types if one of its JSON columns is not TEXT."""
    declared = _sqlite_declared(db, table.name)
    stale = any(declared.get(name, "TEXT") != "TEXT" for name in _json_columns(table))
    return declared if stale else None


def _upgrade_sqlite(engine: Engine) -> bool:
    """SQLite's own recipe for changing a column's type (sqlite.org/lang_altertable.html):
    foreign keys off, then per table create-copy-drop-rename in one IMMEDIATE transaction."""
    raw = engine.raw_connection()
    db: Any = raw.driver_connection
    try:
        # A plain read first: opening an up-to-date store takes no write lock.
        if not any(_sqlite_stale(db, table) for table in _TABLES):
            return False
        # Off before BEGIN (a no-op inside a transaction): dropping `chain` must not cascade.
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("BEGIN IMMEDIATE")
        try:
            # Steps whose chain is gone (none, unless written with foreign keys off) stay
            # as they were; the check below is for references the rebuild itself broke.
            orphans = len(db.execute("PRAGMA foreign_key_check").fetchall())
            changed = False
            for table in _TABLES:  # looked at again under the lock: another may have done it
                declared = _sqlite_stale(db, table)
                if declared is not None:
                    _rebuild(db, engine, table, declared)
                    changed = True
            broken = len(db.execute("PRAGMA foreign_key_check").fetchall())
            if broken != orphans:
                raise UpgradeError(f"{broken - orphans} steps would lose their chain")
            db.execute("COMMIT")
            return changed
        except BaseException:
            db.execute("ROLLBACK")
            raise
    finally:
        db.execute("PRAGMA foreign_keys=ON")
        raw.close()


def _rebuild(db: Any, engine: Engine, table: Table, declared: dict[str, str]) -> None:
    new = f"_taskchain_new_{table.name}"
    ddl = str(CreateTable(table).compile(dialect=engine.dialect)).strip()
    head = f"CREATE TABLE {table.name} ("
    if not ddl.startswith(head):
        raise UpgradeError(f"unexpected DDL for table {table.name}")
    db.execute(f"CREATE TABLE {new} (" + ddl[len(head) :])
    names, values, params = [], [], []
    json_cols = set(_json_columns(table))
    for column in table.columns:
        if column.name in declared:
            names.append(f'"{column.name}"')
            values.append(_carry(column.name) if column.name in json_cols else f'"{column.name}"')
        elif column.default is not None and column.default.is_scalar:
            # A column added since (by a newer model) gets its default in every old row.
            names.append(f'"{column.name}"')
            values.append("?")
            params.append(column.default.arg)  # type: ignore[attr-defined]
        elif not column.nullable:
            raise UpgradeError(f"column {table.name}.{column.name} has no default to fill in")
    db.execute(
        f"INSERT INTO {new} ({', '.join(names)}) SELECT {', '.join(values)} FROM {table.name}",
        params,
    )
    db.execute(f"DROP TABLE {table.name}")
    db.execute(f"ALTER TABLE {new} RENAME TO {table.name}")
    for index in table.indexes:
        db.execute(str(CreateIndex(index).compile(dialect=engine.dialect)))


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


# --- PostgreSQL ---------------------------------------------------------------------------


def _postgres_types(conn: Connection) -> dict[tuple[str, str], str]:
    rows = conn.execute(
        text(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name IN ('chain', 'step')"
        )
    ).all()
    return {(t, c): d for t, c, d in rows}


def _postgres_stale(conn: Connection) -> bool:
    types = _postgres_types(conn)
    return any(
        types.get((table.name, name), "text") != "text"
        for table in _TABLES
        for name in _json_columns(table)
    )


def _upgrade_postgres(conn: Connection) -> bool:
    # json::text is the exact text once written; the lock makes concurrent openers wait,
    # and the check under it makes the second one find nothing left to do.
    conn.execute(text("LOCK TABLE chain, step IN ACCESS EXCLUSIVE MODE"))
    types = _postgres_types(conn)
    changed = False
    for table in _TABLES:
        stale = [n for n in _json_columns(table) if types.get((table.name, n), "text") != "text"]
        if stale:
            alters = ", ".join(f'ALTER COLUMN "{n}" TYPE TEXT USING "{n}"::text' for n in stale)
            conn.execute(text(f"ALTER TABLE {table.name} {alters}"))
            changed = True
    return changed
