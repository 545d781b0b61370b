"""The store's schema version: checked cheaply when a store is opened, upgraded with Alembic.

Every store carries its revision in Alembic's `alembic_version` table. Opening one costs a
single `SELECT` (once per engine); Alembic itself is imported only when a store is behind.

- a store at the head: nothing to do.
- an empty database: the tables are created from the models and stamped at the head.
- a store without a version but with tables (written before versions existed): its revision
  is read off what it has (JSON-declared columns: 0001; TEXT but no runner columns: 0002;
  all of them: 0003; and workflows: 0004), stamped, then upgraded like any other.
- a store behind the head: upgraded in place when it is SQLite (one file on this machine,
  upgraded in one transaction under its write lock, in well under a second for ordinary
  sizes); any other database is left alone and every command says to run
  `taskchain db upgrade` (exit 4): a shared server is upgraded as a deployment step, once.
- a store at a revision this code does not know (written by a newer taskchain): refused,
  exit 4, and never written to.

Upgrades are serialised: SQLite by `BEGIN IMMEDIATE`, PostgreSQL by an advisory lock, and the
revision is read again under the lock, so processes opening an old store together upgrade it
once. All the revisions of one upgrade commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Connection, Engine, MetaData, String, Table, inspect, text
from sqlalchemy.exc import DBAPIError

from taskchain.errors import Unavailable
from taskchain.settings import mask_url
from taskchain.store import tables

#: Every revision in `migrations/versions/`, oldest first (a test checks they agree).
REVISIONS = ("0001", "0002", "0003", "0004", "0005")
HEAD = REVISIONS[-1]
VERSION_TABLE = "alembic_version"
#: Chain columns added by 0003; a store lacking them is at 0002.
_ADDED_IN_0003 = ("runner", "runner_lease_expires_at", "workspace", "submit_host")
_JSON_COLUMNS = (("chain", "config"), ("chain", "result"), ("step", "params"), ("step", "result"))
# Any constant will do; it names taskchain's upgrade among other users of the same server.
_PG_LOCK = 0x7A5C_C4A1_2024
# Alembic's own definition of its table, so that Alembic accepts the stamp we write.
_version_meta = MetaData()
_version = Table(VERSION_TABLE, _version_meta, Column("version_num", String(32), primary_key=True))
_version.primary_key.name = "alembic_version_pkc"


class SchemaError(Unavailable):
    """The store cannot be used at its schema version by this code (exit 4)."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"store {mask_url(url)}: {problem}")
        self.url = url


@dataclass(frozen=True)
class State:
    """Where a store stands. `revision` is None for an empty database."""

    revision: str | None
    stamped: bool

    @property
    def status(self) -> str:
        if self.revision is None:
            return "empty"
        if self.revision not in REVISIONS:
            return "newer"
        return "current" if self.revision == HEAD and self.stamped else "outdated"


def state(engine: Engine) -> State:
    """The store's revision: one SELECT when it is stamped, a look at its tables if not."""
    with engine.connect() as conn:
        try:
            rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        except DBAPIError:
            rows = None  # no version table (or no answer: the look below raises then)
    if rows is not None:
        return _stamped_state(list(rows))
    with engine.connect() as conn:
        return _read(conn)


def ensure(engine: Engine, url: str) -> None:
    """Make the store usable by this code, or raise SchemaError saying what to do."""
    found = state(engine)
    if found.status == "current":
        return
    _refuse_newer(found, url)
    # Empty, or known but behind: create or upgrade where that is safe (see the docstring).
    safe = found.status == "empty" or found.revision == HEAD or engine.dialect.name == "sqlite"
    if not safe:
        raise SchemaError(
            url,
            f"schema is at {found.revision}, this taskchain needs {HEAD}: "
            "run `taskchain db upgrade`",
        )
    migrate(engine, url)


def migrate(engine: Engine, url: str) -> tuple[str | None, str]:
    """Bring the store to the head (create, stamp, upgrade); return (before, after)."""
    upgrading: str | None = None
    try:
        with _locked(engine) as conn:
            found = _read(conn)  # again, under the lock: another process may have done it
            _refuse_newer(found, url)
            if found.revision is None:
                tables.metadata.create_all(conn)
                _stamp(conn, HEAD)
                return None, HEAD
            if not found.stamped:
                _stamp(conn, found.revision)
            if found.revision != HEAD:
                upgrading = found.revision
                from taskchain.store import migrations

                migrations.upgrade(conn)
            return found.revision, HEAD
    except SchemaError:
        raise
    except Exception as exc:  # a revision's own error, SQL's, or MigrationFailed: rolled back
        if upgrading is None and not isinstance(exc, MigrationFailed):
            raise  # not the upgrade: the store is locked or away (db.py says so)
        raise SchemaError(
            url,
            f"could not upgrade its schema from {upgrading} to {HEAD}, nothing changed: "
            f"{_reason(exc)}",
        ) from exc


class MigrationFailed(Exception):
    """An upgrade would have broken the store; it was rolled back."""


def _refuse_newer(found: State, url: str) -> None:
    if found.status == "newer":
        raise SchemaError(
            url,
            f"schema is at {found.revision}, newer than this taskchain knows ({HEAD}): "
            "upgrade taskchain; the store was not changed",
        )


def _stamped_state(rows: list[str]) -> State:
    if len(rows) != 1:  # Alembic branches: not something taskchain ever writes
        return State(",".join(sorted(rows)) or "none", stamped=True)
    return State(rows[0], stamped=True)


def _read(conn: Connection) -> State:
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    if VERSION_TABLE in tables:
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        return _stamped_state(list(rows))
    ours = {"chain", "step"} & tables
    if not ours:
        return State(None, stamped=False)
    if ours != {"chain", "step"}:
        raise SchemaError(
            str(conn.engine.url),
            f"has a {next(iter(ours))} table but no {({'chain', 'step'} - ours).pop()} table: "
            "not a taskchain store",
        )
    columns = {t: {c["name"]: c["type"] for c in inspector.get_columns(t)} for t in ours}
    if any(isinstance(columns[t].get(c), JSON) for t, c in _JSON_COLUMNS):
        return State("0001", stamped=False)
    if not all(name in columns["chain"] for name in _ADDED_IN_0003):
        return State("0002", stamped=False)
    if "workflow" in tables and "workflow_id" in columns["chain"]:
        return State("0004", stamped=False)
    return State("0003", stamped=False)


def _stamp(conn: Connection, revision: str) -> None:
    _version_meta.create_all(conn)
    conn.execute(_version.insert().values(version_num=revision))


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other upgrader can enter at the same time."""
    if engine.dialect.name == "sqlite":
        with _sqlite_lock(engine) as conn:
            yield conn
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        yield conn


@contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[Connection]:
    """SQLite's recipe for rebuilding tables (sqlite.org/lang_altertable.html): foreign keys
    off (dropping `chain` must not cascade to its steps), one IMMEDIATE transaction, and a
    foreign-key check before COMMIT."""
    from taskchain.store.db import WRITE_OPTION

    conn = engine.execution_options(**{WRITE_OPTION: True}).connect()
    raw: Any = conn.connection.driver_connection
    try:
        raw.execute("PRAGMA foreign_keys=OFF")  # before BEGIN: a no-op inside a transaction
        with conn.begin():
            # Steps whose chain is gone (none, unless written with foreign keys off) stay as
            # they were; the check is for references the upgrade itself broke.
            orphans = len(conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall())
            yield conn
            broken = len(conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall())
            if broken != orphans:
                raise MigrationFailed(f"{broken - orphans} steps would lose their chain")
    finally:
        raw.execute("PRAGMA foreign_keys=ON")
        conn.close()


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()
    return first[0] if first else type(orig).__name__
