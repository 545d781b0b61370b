"""A store made before the chain table grew its nullable columns (schema 0002, unversioned)
still opens, on SQLite and PostgreSQL: revision 0003 adds them, and old rows read as None."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from taskchain import settings
from taskchain.cli import app
from taskchain.store import dispose_engines, get_engine, schema

NEW = ("runner", "runner_lease_expires_at", "workspace", "submit_host")


def make_old_store(url: str, *, drop: tuple[str, ...] = NEW) -> None:
    """Today's tables minus `drop`, holding (when it can) one chain written the old way."""
    get_engine()  # creates the tables as they are now
    dispose_engines()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))  # builds of that time had none
        conn.execute(text("DROP INDEX IF EXISTS ix_chain_status_lease"))  # 0005's, on a 0003 column
        for column in drop:
            conn.execute(text(f"ALTER TABLE chain DROP COLUMN {column}"))
        if "attempt" not in drop:
            conn.execute(
                text(
                    "INSERT INTO chain (id, type, description, status, config, created_at, "
                    "step_count, cancel_requested, attempt, result) VALUES ('old1', "
                    "'math_chain', '', 'COMPLETED', '{}', '2024-05-01 12:00:00', 0, false, 1, "
                    "'6')"
                )
            )
    engine.dispose()
    engine = create_engine(url)
    assert {c["name"] for c in inspect(engine).get_columns("chain")}.isdisjoint(drop)
    engine.dispose()


def missing_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(NEW) - {c["name"] for c in inspect(engine).get_columns("chain")}
    finally:
        engine.dispose()


def open_and_read(runner: CliRunner) -> dict:
    result = runner.invoke(app, ["status", "old1", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_an_old_sqlite_store_gets_the_new_columns(runner: CliRunner) -> None:
    url = settings.get_settings().store_url
    make_old_store(url)
    doc = open_and_read(runner)
    assert (doc["status"], doc["result"], doc["orphaned"]) == ("COMPLETED", 6, False)
    assert (doc["workspace"], doc["submit_host"]) == (None, None)
    assert missing_columns(url) == set()
    # New chains use them at once.
    done = runner.invoke(app, ["submit", "math_chain", "--numbers", "1", "2", "-q"])
    assert done.exit_code == 0, done.output
    new = json.loads(runner.invoke(app, ["status", done.stdout.strip(), "--json"]).stdout)
    assert new["workspace"] == str(settings.get_settings().workspace.resolve())


def test_an_old_postgresql_store_gets_the_new_columns(
    runner: CliRunner, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", postgres_url)
    settings.configure()
    make_old_store(postgres_url)
    refused = runner.invoke(app, ["status", "old1"])
    assert (refused.exit_code, refused.stderr) == (4, (
        f"taskchain: error: store {postgres_url}: schema is at 0002, this taskchain needs 0005: "
        "run `taskchain db upgrade`\n"))  # fmt: skip
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    doc = open_and_read(runner)
    assert (doc["status"], doc["result"], doc["workspace"]) == ("COMPLETED", 6, None)
    assert missing_columns(postgres_url) == set()
    dispose_engines()


def test_opening_twice_adds_nothing_the_second_time() -> None:
    make_old_store(settings.get_settings().store_url)
    engine = get_engine()  # adds them
    assert schema.state(engine) == schema.State("0005", stamped=True)
    assert schema.migrate(engine, "url") == ("0005", "0005")
