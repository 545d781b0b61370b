"""Engines and sessions: SQLite in WAL mode by default, any SQLAlchemy URL when configured."""

from __future__ import annotations

import copy
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.sql.dml import UpdateBase
from sqlmodel import Session

from taskchain.errors import InvalidInput, StoreUnavailable
from taskchain.settings import get_settings, mask_url
from taskchain.store import schema

#: url -> (its engine, the same engine with the write option): made once, for
#: `execution_options` builds a new engine on every call.
_engines: dict[str, tuple[Engine, Engine]] = {}
_lock = threading.Lock()
WRITE_OPTION = _WRITE = "taskchain_write"


def _sqlite_pragmas(engine: Engine, busy_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself, so writes can say IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        _to_wal(cur, busy_ms / 1000)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the lock up front: no deadlock between two deferred upgrades. Sent
        # on the driver's connection: through `exec_driver_sql`, BEGIN cost a step's claim
        # and record more CPU than their statements (SQLAlchemy's whole execute path).
        immediate = conn.get_execution_options().get(_WRITE, False)
        statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        try:
            conn.connection.driver_connection.execute(statement)
        except sqlite3.Error as exc:
            raise _driver_error(conn, exc, statement, None) from exc


def _to_wal(cur: sqlite3.Cursor, timeout: float) -> None:
    """Put the store in WAL mode. Two connections turning a rollback-journal file (an older
    store, or one made by other tools) to WAL at once deadlock, and SQLite then answers
    "database is locked" at once, without waiting on `busy_timeout`; the loser tries again
    until the timeout, by when the winner has made the file WAL and the pragma is a no-op."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _create(url: str) -> Engine:
    settings = get_settings()
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidInput(f"database URL {mask_url(url)!r} is not a valid SQLAlchemy URL") from exc
    # No pool_pre_ping: it costs a round trip (a `SELECT 1`) before every transaction, most
    # of a short step's cost. A dead pooled connection (server restarted) instead fails its
    # first statement, before anything is written; SQLAlchemy then drops the pool's older
    # connections and the store-retry (`runner.with_store_retry`, `wait.follow`) runs the
    # transaction again on a fresh one. `pool_recycle` retires connections before a server
    # or a proxy closes idle ones.
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _check_path(url, Path(parsed.database).expanduser())
        kwargs["connect_args"] = {"timeout": settings.store_timeout, "check_same_thread": False}
    elif parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs["connect_args"] = {"connect_timeout": max(1, int(settings.store_timeout))}
    if parsed.get_backend_name() != "sqlite":
        kwargs["pool_recycle"] = 1800
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise InvalidInput(f"database URL {mask_url(url)!r}: driver not installed ({exc})") from exc
    if parsed.get_backend_name() == "sqlite":
        _sqlite_pragmas(engine, int(settings.store_timeout * 1000))
    return engine


def _check_path(url: str, path: Path) -> None:
    """Create the SQLite file's folder if missing; exit 4 naming what is in the way."""
    if path.is_dir():
        raise StoreUnavailable(mask_url(url), f"{path} is a folder, not a database file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        blocker = next((p for p in path.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            why = f"{blocker} is a file, not a folder"
        else:
            why = getattr(exc, "strerror", None) or str(exc)
        raise StoreUnavailable(mask_url(url), f"cannot create folder {path.parent}: {why}") from exc


def get_engine() -> Engine:
    """The store's engine, its schema checked (and created or upgraded) on first use."""
    return _engine(write=False)


def _engine(*, write: bool) -> Engine:
    """The store's engine; `write=True`: the one whose transactions lock at BEGIN on SQLite."""
    url = get_settings().store_url
    pair = _engines.get(url)
    if pair is None:
        with _lock:
            pair = _engines.get(url)
            if pair is None:
                engine = _create(url)
                try:
                    # Once per engine: one SELECT of the schema version when all is well.
                    _unavailable_as_exit_4(url, lambda: schema.ensure(engine, url))
                except BaseException:
                    engine.dispose()
                    raise
                pair = _engines[url] = (engine, engine.execution_options(**{_WRITE: True}))
    return pair[1] if write else pair[0]


def unchecked_engine() -> Engine:
    """A new engine on the store, its schema not looked at (for `taskchain db`); dispose it."""
    return _create(get_settings().store_url)


def _unavailable_as_exit_4(url: str, call: Any) -> Any:
    try:
        return call()
    except (DBAPIError, sqlite3.Error) as exc:  # sqlite3's own: the upgrade's PRAGMAs
        raise StoreUnavailable(mask_url(url), _reason(exc)) from exc


def dispose_engines() -> None:
    """Forget pooled connections, e.g. in a forked worker child that inherited them."""
    with _lock:
        for engine, _writer in _engines.values():
            engine.dispose(close=False)
        _engines.clear()


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


@contextmanager
def session(*, write: bool = False) -> Iterator[Session]:
    """A session; `write=True` commits at the end and, on SQLite, locks at BEGIN."""
    bind = _engine(write=write)
    try:
        with Session(bind, expire_on_commit=False) as s:
            yield s
            if write:
                s.commit()
    except DBAPIError as exc:
        if isinstance(exc.orig, Exception) and _is_unavailable(exc):
            raise StoreUnavailable(mask_url(get_settings().store_url), _reason(exc)) from exc
        raise


@contextmanager
def transaction(*, write: bool = False) -> Iterator[Connection]:
    """A Core connection in one transaction, committed at the end: for hot paths that run
    prepared statements and need no ORM objects (`write=True` locks at BEGIN on SQLite)."""
    bind = _engine(write=write)
    try:
        with bind.begin() as conn:
            yield conn
    except DBAPIError as exc:
        if isinstance(exc.orig, Exception) and _is_unavailable(exc):
            raise StoreUnavailable(mask_url(get_settings().store_url), _reason(exc)) from exc
        raise


def _is_unavailable(exc: DBAPIError) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError) or exc.connection_invalidated


@dataclass(frozen=True)
class _Plan:
    """A statement as the driver takes it: the SQL with positional markers (`?` for
    sqlite3, `%s` for psycopg), then per marker the caller's parameter (its name) or a
    constant of the statement (processed once), with the bind processor of its column type;
    per RETURNING column, the result processor."""

    sql: str
    binds: tuple[tuple[str | None, Callable[[Any], Any] | None, Any], ...]
    results: tuple[Callable[[Any], Any] | None, ...]


class Prepared:
    """A statement of a step's claim or record, or a submit's INSERT, run many times a
    second by a worker or a submitter.

    On SQLite (sqlite3) and PostgreSQL (psycopg) it is compiled once and runs on the
    driver's cursor, inside SQLAlchemy's transaction: through `Connection.execute` each
    statement cost ~4x the driver's own work on SQLite (its cache key, events, result
    set-up). Values are converted by the column types' own processors, as
    `Connection.execute` does (JSON text, aware UTC times, statuses); a driver error is
    raised as SQLAlchemy raises it, and a connection the server dropped is invalidated as
    SQLAlchemy invalidates it, so that the pool does not hand it out again. Another driver
    gets `Connection.execute`."""

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        self._plans: dict[Dialect, _Plan | None] = {}

    def _plan(self, dialect: Dialect) -> _Plan | None:
        if dialect not in self._plans:
            direct = (dialect.name, dialect.driver) in _DRIVERS
            self._plans[dialect] = _compile(self.statement, dialect) if direct else None
        return self._plans[dialect]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row the statement returns (RETURNING), its values converted; or None."""
        plan = self._plan(conn.dialect)
        if plan is None:
            found = conn.execute(self.statement, params).first()
            return None if found is None else tuple(found)
        row, _count = _run(conn, plan, params)
        if row is None:
            return None
        return tuple(
            value if convert is None else convert(value)
            for value, convert in zip(row, plan.results, strict=True)
        )

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run the statement; how many rows it changed."""
        plan = self._plan(conn.dialect)
        if plan is None:
            return int(conn.execute(self.statement, params).rowcount)
        return _run(conn, plan, params)[1]

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row, in one call (an INSERT of many rows)."""
        plan = self._plan(conn.dialect)
        if plan is None:
            conn.execute(self.statement, list(rows))
            return
        _execute(conn, plan, [_values(plan, row) for row in rows], many=True)


#: (dialect, driver) whose statements `Prepared` runs on the driver's cursor.
_DRIVERS = {("sqlite", "pysqlite"), ("postgresql", "psycopg")}


def _compile(statement: UpdateBase, dialect: Dialect) -> _Plan:
    marking = dialect
    if not dialect.positional:  # psycopg's named `%(name)s`: its positional `%s` instead
        marking = copy.copy(dialect)
        marking.paramstyle, marking.positional = "format", True
    compiled = statement.compile(dialect=marking)
    if compiled.post_compile_params or compiled.positiontup is None:
        raise TypeError(f"not a statement to prepare: {compiled.string}")
    binds: list[tuple[str | None, Callable[[Any], Any] | None, Any]] = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.required:  # the caller's, by name
            binds.append((name, convert, None))
        else:  # the statement's own constant
            binds.append((None, None, bind.value if convert is None else convert(bind.value)))
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in statement.exported_columns
    )
    return _Plan(compiled.string, tuple(binds), results)


def _values(plan: _Plan, params: Mapping[str, Any]) -> list[Any]:
    """The driver's parameters for one execution, in the order of the statement's markers."""
    return [
        constant if name is None else (params[name] if convert is None else convert(params[name]))
        for name, convert, constant in plan.binds
    ]


def _run(conn: Connection, plan: _Plan, params: Mapping[str, Any]) -> tuple[Any, int]:
    """Execute on the driver: the first row (RETURNING, else None) and the rows changed."""
    return _execute(conn, plan, _values(plan, params), many=False)


def _execute(conn: Connection, plan: _Plan, values: Any, *, many: bool) -> tuple[Any, int]:
    """Run `plan` on a cursor of the driver, in SQLAlchemy's transaction (begun if need be):
    once with `values`, or once per set in them (`many`)."""
    if not conn.in_transaction():
        conn.begin()  # as `Connection.execute` would (autobegin)
    driver: Any = conn.connection.driver_connection
    try:
        cursor = driver.cursor()
        try:
            (cursor.executemany if many else cursor.execute)(plan.sql, values)
            row = cursor.fetchone() if plan.results and not many else None
            return row, int(cursor.rowcount)
        finally:
            cursor.close()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _driver_error(conn, exc, plan.sql, values) from exc


def _driver_error(conn: Connection, exc: Exception, statement: str, params: Any) -> Exception:
    """What SQLAlchemy raises for `exc` from a statement it sent: the matching DBAPIError
    (OperationalError for a lost server or "database is locked": exit 4, and the store
    retry), the connection invalidated when the driver says it is gone."""
    dialect = conn.dialect
    driver_error: Any = exc  # the driver's own Error, which `is_disconnect` is typed for
    lost = bool(dialect.is_disconnect(driver_error, conn.connection.dbapi_connection, None))
    if lost:
        conn.invalidate(exc)
    return DBAPIError.instance(
        statement, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost
    )
