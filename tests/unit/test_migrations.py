"""Schema versions: a store written by the first release (tests/fixtures/store_0001) is
upgraded to the head with every record intact, on SQLite and PostgreSQL; a store from a newer
release is refused untouched; `db current` / `db upgrade` say where a store stands."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel
from typer.testing import CliRunner

from taskchain import settings
from taskchain.cli import app
from taskchain.store import dispose_engines, get_engine, migrations, queries, schema, session
from taskchain.store.models import Status

FIXTURE = Path(__file__).parents[1] / "fixtures" / "store_0001"
#: The step results the release recorded in chain `old-done`, and what comes back: on
#: PostgreSQL (json kept the text) exactly; on SQLite the numbers its NUMERIC affinity had
#: already mangled stay mangled, everything else is exact.
RECORDED: list[Any] = [6, 0.30000000000000004, "007", {"n": 10**100, "s": "1e5"}, None,
                       9223372036854775807, 10**100, 5.0, int("9" * 4000)]  # fmt: skip
ON_SQLITE: list[Any] = [*RECORDED[:6], 1e100, 5, math.inf]


def same(a: Any, b: Any) -> bool:
    return a == b and json.dumps(a) == json.dumps(b)


def load_fixture(url: str) -> None:
    """The first release's tables and rows, as that release wrote them."""
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    ddl = (FIXTURE / f"schema.{backend}.sql").read_text()
    rows = (FIXTURE / "rows.sql").read_text()
    if backend == "sqlite":
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        db.executescript(ddl + rows)
        db.close()
        return
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as c:
        c.execute("SET TIME ZONE 'UTC'")
        sql = "\n".join(line for line in (ddl + rows).splitlines() if not line.startswith("--"))
        for statement in sql.split(";\n"):
            if statement.strip():
                c.execute(statement)  # type: ignore[arg-type]


def version_rows(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def test_the_revision_list_matches_the_scripts() -> None:
    assert migrations.script_revisions() == list(schema.REVISIONS)


def test_the_first_release_store_is_upgraded_with_every_record_intact(
    store_url: str, runner: CliRunner
) -> None:
    load_fixture(store_url)
    if store_url.startswith("postgresql"):
        # A shared server is not upgraded behind its users' backs: every command says so.
        refused = runner.invoke(app, ["list"])
        assert (refused.exit_code, refused.stderr) == (4, (
            f"taskchain: error: store {store_url}: schema is at 0001, this taskchain needs 0005: "
            "run `taskchain db upgrade`\n"))  # fmt: skip
        done = runner.invoke(app, ["db", "upgrade"])
        assert (done.exit_code, done.stderr) == (0, "upgraded the store from schema 0001 to 0005\n")
    # (SQLite: the first command upgrades it.)
    listed = runner.invoke(app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [c["id"] for c in json.loads(listed.stdout)] == ["old-pending", "old-failed", "old-done"]
    assert version_rows(store_url) == ["0005"]

    with session() as s:
        done_view = queries.get_chain(session=s, chain_id="old-done")
        failed = queries.get_chain(session=s, chain_id="old-failed")
        pending = queries.get_chain(session=s, chain_id="old-pending")
    chain = done_view.chain
    assert (chain.type, chain.description, chain.status, chain.attempt) == (
        "math_chain", "all kinds of numbers", Status.COMPLETED, 1)  # fmt: skip
    assert same(chain.config, {"numbers": [10, 10, 10], "operation": "power", "x": 0.1})
    assert (chain.created_at.isoformat(), chain.finished_at and chain.finished_at.isoformat()) == (
        "2025-01-01T00:00:01+00:00", "2025-01-01T00:00:09+00:00")  # fmt: skip
    assert (chain.runner, chain.workspace, chain.submit_host) == (None, None, None)
    want = RECORDED if store_url.startswith("postgresql") else ON_SQLITE
    assert same(chain.result, want[6])
    got = [s.result for s in done_view.steps]
    assert [same(g, w) for g, w in zip(got, want, strict=True)] == [True] * len(RECORDED), got
    assert [s.worker for s in done_view.steps] == ["celery@w1"] * len(RECORDED)
    assert all(same(s.params, {"op": "add"}) for s in done_view.steps)
    assert (failed.chain.status, failed.chain.error, failed.chain.attempt) == (
        Status.FAILED, "step 2 (analyze) failed: no such column", 2)  # fmt: skip
    assert [(s.status, s.attempts, s.error) for s in failed.steps] == [
        (Status.COMPLETED, 1, None), (Status.FAILED, 2, "no such column")]  # fmt: skip
    assert failed.steps[0].result == {"path": ".taskchain/old-failed/1-clean.parquet", "rows": 3}
    assert (pending.chain.cancel_requested, pending.steps[0].status) == (True, Status.PENDING)
    assert pending.steps[0].dispatched_at is not None

    # From now on values are exact, and the new columns are used.
    new = runner.invoke(app, ["submit", "math_chain", "--numbers", str(10**100), "1", "-q"])
    assert new.exit_code == 0, new.output
    doc = json.loads(runner.invoke(app, ["status", new.stdout.strip(), "--json"]).stdout)
    assert (doc["result"], doc["workspace"]) == (
        10**100 + 1,
        str(settings.get_settings().workspace),
    )
    # The cascade survived the rebuild.
    deleted = runner.invoke(app, ["delete", "old-done", "--yes"])
    assert deleted.exit_code == 0, deleted.output
    with get_engine().connect() as conn:
        left = conn.execute(text("SELECT DISTINCT chain_id FROM step ORDER BY chain_id")).scalars()
        assert [c for c in left if c.startswith("old")] == ["old-failed", "old-pending"]


def test_the_revisions_build_the_tables_the_models_describe(store_url: str) -> None:
    """A fresh store is created from the models and stamped; an upgraded one is built by the
    revisions: both must be the same tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            migrations.upgrade(conn)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []
    assert version_rows(store_url) == ["0005"]


def test_a_store_from_a_newer_release_is_refused_untouched(
    store_url: str, runner: CliRunner
) -> None:
    get_engine()
    dispose_engines()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0042'"))
        conn.execute(text("ALTER TABLE chain ADD COLUMN future_column INTEGER"))
    engine.dispose()
    for args in (["list"], ["status", "x"], ["db", "upgrade"]):
        result = runner.invoke(app, args)
        assert (result.exit_code, result.stdout, result.stderr) == (4, "", (
            f"taskchain: error: store {store_url}: schema is at 0042, newer than this taskchain "
            "knows (0005): upgrade taskchain; the store was not changed\n")), args  # fmt: skip
    assert version_rows(store_url) == ["0042"]
    current = runner.invoke(app, ["db", "current", "--json"])
    assert current.exit_code == 0
    assert json.loads(current.stdout) == {"store": store_url, "revision": "0042", "head": "0005",
                                          "status": "newer", "stamped": True}  # fmt: skip


def test_db_current_reads_without_changing_anything(runner: CliRunner) -> None:
    url = settings.get_settings().store_url
    load_fixture(url)
    plain = runner.invoke(app, ["db", "current"])
    assert (plain.exit_code, plain.stdout) == (
        0,
        "0001 (head is 0005: run `taskchain db upgrade`)\n",
    )
    doc = json.loads(runner.invoke(app, ["db", "current", "--json"]).stdout)
    assert doc == {"store": url, "revision": "0001", "head": "0005", "status": "outdated",
                   "stamped": False}  # fmt: skip
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert tables == {"chain", "step"}  # not even stamped
    assert runner.invoke(app, ["db", "upgrade", "--json"]).stdout == json.dumps(
        {"store": url, "before": "0001", "after": "0005"}) + "\n"  # fmt: skip
    assert runner.invoke(app, ["db", "current"]).stdout == "0005 (head)\n"
    again = runner.invoke(app, ["db", "upgrade"])
    assert (again.exit_code, again.stderr) == (0, "store already at schema 0005; nothing to do\n")


def test_an_unversioned_store_is_stamped_by_what_it_has(runner: CliRunner) -> None:
    """Stores from builds between releases: TEXT columns without the runner columns are at
    0002; with them, at 0003 (only stamped)."""
    url = settings.get_settings().store_url
    get_engine()
    dispose_engines()
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    db.executescript("DROP TABLE alembic_version; ALTER TABLE chain DROP COLUMN submit_host;")
    db.close()
    assert json.loads(runner.invoke(app, ["db", "current", "--json"]).stdout)["revision"] == "0002"
    assert runner.invoke(app, ["list"]).exit_code == 0
    assert version_rows(url) == ["0005"]
    get_engine()
    with get_engine().connect() as conn:
        cols = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(chain)")}
    assert "submit_host" in cols


def test_read_commands_do_not_import_alembic(env: dict[str, str], runner: CliRunner) -> None:
    assert runner.invoke(app, ["list"]).exit_code == 0  # the store exists, at the head
    code = ("import sys; from taskchain.cli import main; sys.argv = ['taskchain', 'list', "
            "'--json']\ntry: main()\nexcept SystemExit: pass\n"
            "print('alembic' in sys.modules, file=sys.stderr)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert (done.stdout, done.stderr) == ("[]\n", "False\n")


@pytest.mark.parametrize("kind", ["fresh", "first release"])
def test_processes_opening_a_store_together_make_or_upgrade_it_once(
    store_url: str, env: dict[str, str], kind: str
) -> None:
    if kind == "first release":
        load_fixture(store_url)
    env = {**env, "TASKCHAIN_DATABASE_URL": store_url}
    command = [sys.executable, "-m", "taskchain", "db", "upgrade", "--json"]
    if store_url.startswith("sqlite"):
        command = [sys.executable, "-m", "taskchain", "list", "--json"]  # upgrades on open
    procs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, err) for p, (_, err) in zip(procs, outputs, strict=True)] == [
        (0, "")
    ] * 3
    assert version_rows(store_url) == ["0005"]
    if "db" in command:
        befores = sorted(str(json.loads(out)["before"]) for out, _ in outputs)
        first = "None" if kind == "fresh" else "0001"
        assert befores == sorted([first, "0005", "0005"])  # one did it, the others found it done
    else:
        want = [] if kind == "fresh" else ["old-pending", "old-failed", "old-done"]
        assert [[c["id"] for c in json.loads(out)] for out, _ in outputs] == [want] * 3


@pytest.mark.parametrize("kind", ["new file", "rollback-journal file"])
def test_connections_making_a_sqlite_store_wal_together_all_open_it(
    tmp_path: Path, kind: str
) -> None:
    """A new store, or one in rollback-journal mode (the first release's, or a file other
    tools made), is made WAL by whichever connection comes first. Two doing it at once
    deadlock, and SQLite answers "database is locked" without waiting: the race lost a
    process in a CI run."""
    failures: list[str] = []
    for round_ in range(40):
        path = tmp_path / f"store{round_}.db"
        if kind == "rollback-journal file":
            old = sqlite3.connect(path)
            old.executescript("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
            old.close()
        failures += [f"round {round_}: {why}" for why in open_together(f"sqlite:///{path}", 3)]
    assert failures == []


def open_together(url: str, count: int) -> list[str]:
    """Open `count` new engines on `url` at the same moment; what went wrong, if anything."""
    from taskchain.store import db

    engines = [db._create(url) for _ in range(count)]
    start = threading.Barrier(count)
    failures: list[str] = []

    def open_it(engine: Any) -> None:
        start.wait()
        try:
            with engine.connect() as conn:
                mode = conn.execute(text("PRAGMA journal_mode")).scalar()
            if mode != "wal":
                failures.append(f"journal mode {mode}")
        except Exception as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=open_it, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    return failures
