"""A store that is locked or gone: exit 4 with one line, and workers wait instead of losing writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from taskchain import settings
from taskchain.engine import runner
from taskchain.engine.submit import prepare
from taskchain.store import Status, queries, session
from tests.support import proc

HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@contextmanager
def locked(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding an exclusive write lock on the SQLite store."""
    holder = proc.spawn(
        [sys.executable, "-c", HOLD, str(db), str(seconds)], os.environ, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        yield holder
    finally:
        holder.wait(timeout=seconds + 10)


def test_submit_to_a_locked_sqlite_store_is_exit_4(env: dict[str, str], tmp_path: Path) -> None:
    assert proc.run(["list"], env).returncode == 0  # creates the store
    env = {**env, "TASKCHAIN_STORE_TIMEOUT": "1"}
    limit = proc.within(3, env)  # a store timeout of 1 s, and the command's own start
    with locked(tmp_path / "store.db", limit + 5) as holder:
        start = time.monotonic()
        done = proc.run(["submit", "math_chain", "--numbers", "1", "2"], env)
        elapsed = time.monotonic() - start
        reading = proc.run(["list", "--json"], env)  # WAL: readers are not blocked
        holder.kill()  # done with the lock: no need to wait out its time
    assert done.returncode == 4
    assert done.stdout == ""
    assert done.stderr.strip().endswith("is unavailable: database is locked")
    assert len(done.stderr.strip().splitlines()) == 1
    assert elapsed < limit
    assert (reading.returncode, reading.stdout) == (0, "[]\n")


def test_unreachable_postgres_is_exit_4(env: dict[str, str]) -> None:
    env = {**env, "TASKCHAIN_DATABASE_URL": "postgresql://app:secret@127.0.0.1:1/none"}
    for args in (["list"], ["status", "abc"], ["submit", "math_chain", "--numbers", "1", "2"]):
        limit = proc.within(3, env)
        start = time.monotonic()
        done = proc.run(args, env)
        assert done.returncode == 4, (args, done.stderr)
        assert done.stderr.startswith(
            "taskchain: error: store postgresql://app:***@127.0.0.1:1/none is unavailable"
        )
        assert "secret" not in done.stderr
        assert time.monotonic() - start < limit


def test_worker_waits_out_a_locked_store_instead_of_losing_the_write(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TASKCHAIN_STORE_TIMEOUT", "0.3")
    settings.configure()
    chain, steps = prepare("math_chain", {"numbers": [2, 3]})
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    with locked(tmp_path / "store.db", 2.0):
        start = time.monotonic()
        assert runner.execute_step(chain.id, 0, worker="t") is None
        waited = time.monotonic() - start
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain.id)
    assert waited > 1.0  # it really waited for the lock
    assert (view.chain.status, view.chain.result, view.steps[0].attempts) == (
        Status.COMPLETED,
        5,
        1,
    )
