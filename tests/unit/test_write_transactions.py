"""The store's write transactions on SQLite: a writer takes the write lock at BEGIN (BEGIN
IMMEDIATE, sent on the driver's connection by the engine's "begin" event), a reader does not,
and a writer that cannot get the lock in time is a store outage (exit 4), as SQLAlchemy would
have reported it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from taskchain import settings
from taskchain.errors import StoreUnavailable
from taskchain.store import db


def _file() -> Path:
    url = settings.get_settings().store_url
    assert url.startswith("sqlite:///")
    return Path(url.removeprefix("sqlite:///"))


def _other() -> sqlite3.Connection:
    """A second connection to the store that never waits for a lock."""
    other = sqlite3.connect(_file(), timeout=0, isolation_level=None)
    other.execute("PRAGMA busy_timeout=0")
    return other


@pytest.mark.parametrize("kind", ["transaction", "session"])
def test_a_writer_holds_the_write_lock_from_begin(kind: str) -> None:
    other = _other()
    block = db.transaction(write=True) if kind == "transaction" else db.session(write=True)
    with block as opened:
        if kind == "session":
            opened.connection()  # a session begins at its first statement
        # Nothing written yet, and another writer is already kept out.
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # committed: the lock is free again
    other.execute("ROLLBACK")
    other.close()


def test_a_reader_takes_no_write_lock() -> None:
    other = _other()
    with db.transaction() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    other.close()


def test_the_write_engine_is_made_once_per_store() -> None:
    with db.transaction(write=True) as first:
        pass
    with db.transaction(write=True) as second:
        pass
    assert first.engine is second.engine
    assert first.engine.get_execution_options()[db.WRITE_OPTION] is True
    assert db.get_engine().get_execution_options().get(db.WRITE_OPTION) is None


def test_a_writer_kept_out_too_long_is_a_store_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCHAIN_STORE_TIMEOUT", "0.2")
    settings.configure()
    db.dispose_engines()
    db.get_engine()  # the schema made before another process holds the lock
    other = _other()
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable) as caught, db.transaction(write=True):
            pass
        assert caught.value.exit_code == 4
        assert "database is locked" in str(caught.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with db.transaction(write=True) as conn:  # and the pooled connection still works
        assert conn.execute(text("SELECT 1")).scalar() == 1
