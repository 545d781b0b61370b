"""Every value the store records comes back exactly, on SQLite and PostgreSQL; and a store
written by the release whose JSON columns mangled numbers is upgraded in place (revision 0002,
see taskchain/store/migrations/versions)."""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from typer.testing import CliRunner

from taskchain.cli import app
from taskchain.store import (
    ChainRecord,
    StepRecord,
    get_engine,
    migrations,
    queries,
    schema,
    session,
    transitions,
)
from taskchain.store.models import utcnow

LATER = utcnow().replace(year=utcnow().year + 1)
BIGGEST = 10**4000 - 1  # 4,000 digits: the README's promise (Python's str limit is 4,300)


def digits(text: str, negative: bool) -> int:
    return -int(text) if negative else int(text)


big_ints = st.builds(digits, st.text("0123456789", min_size=1, max_size=4000), st.booleans())
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | big_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(st.characters(exclude_categories=()))  # lone surrogates included
    | st.sampled_from(["007", "1e5", "-0", "0.10", "NaN", "true", "null", "1" * 30])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON shape: 1 is not 1.0 nor True, -0.0 is not 0.0, key order."""
    return a == b and json.dumps(a) == json.dumps(b)


def round_trip(value: Any) -> dict[str, Any]:
    """Record `value` as a chain's config and result and a step's params and result, through
    the store's own functions, and read all four back in a fresh session."""
    chain_id = uuid.uuid4().hex
    chain = ChainRecord(id=chain_id, type="probe_chain", config={"v": value}, step_count=1)
    step = StepRecord(
        chain_id=chain_id, index=0, name="s", queue="q", params={"v": value}, task_id="t"
    )
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=[step])
    with session(write=True) as s:
        assert transitions.claim_step(
            session=s, chain_id=chain_id, index=0, token="w", lease_until=LATER
        )
        assert transitions.complete_step(
            session=s, chain_id=chain_id, index=0, token="w", result=value, last=True
        )
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    return {
        "config": view.chain.config["v"],
        "chain result": view.chain.result,
        "params": view.steps[0].params["v"],
        "step result": view.steps[0].result,
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=json_values)
@example(value=10**100)
@example(value=BIGGEST)
@example(value=-BIGGEST)
@example(value=2**63)
@example(value=-(2**63) - 1)
@example(value=9223372036854775807)
@example(value=0.1)
@example(value=1e308)
@example(value=-0.0)
@example(value=5e-324)
@example(value=5.0)
@example(value="007")
@example(value="1e5")
@example(value={"b": [1, {"z": 2**200 + 1}], "a": "ünïcødé ✓ \U0001f600", "": None})
@example(value=[[], {}, "", 0, False])
def test_every_value_comes_back_exactly(store_url: str, value: Any) -> None:
    back = round_trip(value)
    assert {k: v for k, v in back.items() if not same(v, value)} == {}


def test_values_are_stored_as_json_text(store_url: str) -> None:
    """The columns hold text on both backends: nothing for the database to reinterpret."""
    round_trip(10**100)
    with get_engine().connect() as conn:
        if store_url.startswith("sqlite"):
            kinds = conn.execute(
                text("SELECT typeof(config), typeof(result) FROM chain "
                     "UNION SELECT typeof(params), typeof(result) FROM step")
            ).all()  # fmt: skip
            stored = conn.execute(text("SELECT result FROM chain")).scalar()
            assert set(kinds) == {("text", "text")}
        else:
            kinds = conn.execute(
                text("SELECT DISTINCT data_type FROM information_schema.columns WHERE "
                     "table_schema = current_schema() AND column_name IN ('config', 'params', "
                     "'result')")
            ).all()  # fmt: skip
            stored = conn.execute(text("SELECT result FROM chain")).scalar()
            assert kinds == [("text",)]
    assert stored == "1" + "0" * 100


# --- the upgrade of stores written by the release whose JSON columns were declared JSON -------

#: The schema that release created in SQLite, verbatim (`sqlite3 taskchain.db .schema`).
LEGACY_SQLITE = """
CREATE TABLE chain (
	id VARCHAR(64) NOT NULL, type VARCHAR(64) NOT NULL, description VARCHAR NOT NULL,
	status VARCHAR(9) NOT NULL, config JSON NOT NULL, created_at DATETIME NOT NULL,
	started_at DATETIME, finished_at DATETIME, result JSON, error VARCHAR,
	step_count INTEGER NOT NULL, cancel_requested BOOLEAN NOT NULL, attempt INTEGER NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_chain_status_created ON chain (status, created_at);
CREATE INDEX ix_chain_type_created ON chain (type, created_at);
CREATE INDEX ix_chain_created ON chain (created_at);
CREATE TABLE step (
	chain_id VARCHAR NOT NULL, "index" INTEGER NOT NULL, name VARCHAR NOT NULL,
	queue VARCHAR(64) NOT NULL, params JSON NOT NULL, status VARCHAR(9) NOT NULL,
	task_id VARCHAR(64) NOT NULL, attempts INTEGER NOT NULL, started_at DATETIME,
	finished_at DATETIME, result JSON, error VARCHAR, progress VARCHAR, worker VARCHAR,
	lease_expires_at DATETIME, dispatched_at DATETIME,
	PRIMARY KEY (chain_id, "index"),
	FOREIGN KEY(chain_id) REFERENCES chain (id) ON DELETE CASCADE
);
"""
#: What the release recorded (as json.dumps text, as SQLAlchemy's JSON type bound it) and
#: what comes back after the upgrade: exact where the old column kept it, else the damage.
LEGACY_STEPS = [
    (6, 6),
    (0.30000000000000004, 0.30000000000000004),  # kept as a REAL: carried to the last bit
    ("007", "007"),  # JSON strings were quoted text: never touched
    ({"n": 10**100, "s": "1e5"}, {"n": 10**100, "s": "1e5"}),  # objects were text too
    (None, None),
    (9223372036854775807, 9223372036854775807),
    (10**100, 1e100),  # lost already: SQLite had made it a REAL
    (5.0, 5),  # lost already: a whole REAL became an INTEGER
    (int("9" * 4000), math.inf),  # lost already: too big for a REAL
]


def write_legacy_sqlite(path: Path, *, chains: int = 2) -> None:
    db = sqlite3.connect(path)
    db.executescript(LEGACY_SQLITE)
    now = "2025-01-01 00:00:00.000000"
    for c in range(chains):
        config = json.dumps({"numbers": [10, 10, 10], "operation": "power", "x": 0.1})
        db.execute(
            "INSERT INTO chain VALUES (?, 'math_chain', 'old', 'COMPLETED', ?, ?, ?, ?, ?, NULL,"
            " ?, 0, 1)",
            (f"old{c}", config, now, now, now, json.dumps(10**100), len(LEGACY_STEPS)),
        )
        for i, (value, _) in enumerate(LEGACY_STEPS):
            db.execute(
                "INSERT INTO step VALUES (?, ?, ?, 'math', ?, 'COMPLETED', ?, 1, ?, ?, ?, NULL,"
                " NULL, NULL, NULL, NULL)",
                (f"old{c}", i, f"step {i}", json.dumps({"op": "add"}), f"t{i}", now, now,
                 json.dumps(value)),
            )  # fmt: skip
    db.commit()
    db.close()


def declared(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return {
            f"{table}.{row[1]}": row[2]
            for table in ("chain", "step")
            for row in db.execute(f"PRAGMA table_info({table})")
            if row[1] in ("config", "params", "result")
        }
    finally:
        db.close()


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"  # the store the autouse `isolated` fixture points at
    write_legacy_sqlite(path)
    assert set(declared(path).values()) == {"JSON"}
    return path


def test_a_legacy_sqlite_store_is_upgraded_in_place_keeping_every_row(legacy: Path) -> None:
    get_engine()  # opening the store upgrades it
    assert declared(legacy) == {
        "chain.config": "TEXT", "chain.result": "TEXT", "step.params": "TEXT", "step.result": "TEXT",
    }  # fmt: skip
    for chain_id in ("old0", "old1"):
        with session() as s:
            view = queries.get_chain(session=s, chain_id=chain_id)
        assert same(view.chain.config, {"numbers": [10, 10, 10], "operation": "power", "x": 0.1})
        assert view.chain.result == 1e100 and type(view.chain.result) is float  # lost before
        assert [s.index for s in view.steps] == list(range(len(LEGACY_STEPS)))
        got = [s.result for s in view.steps]
        assert [same(g, want) for g, (_, want) in zip(got, LEGACY_STEPS, strict=True)] == [True] * 9
        assert all(same(s.params, {"op": "add"}) for s in view.steps)
    db = sqlite3.connect(legacy)
    indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"ix_chain_created", "ix_chain_status_created", "ix_chain_type_created"} <= indexes
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("DELETE FROM chain WHERE id = 'old0'")  # the cascade survived the rebuild
    assert db.execute("SELECT DISTINCT chain_id FROM step").fetchall() == [("old1",)]
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    assert round_trip(10**100)["chain result"] == 10**100  # and from now on, exactly
    assert schema.state(get_engine()) == schema.State("0005", stamped=True)  # once is enough


def test_a_failed_upgrade_changes_nothing_and_says_so(
    legacy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = migrations.upgrade

    def upgrade_then_fail(connection: Any) -> None:
        real(connection)  # both revisions ran, in the transaction; COMMIT has not
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(migrations, "upgrade", upgrade_then_fail)
    with pytest.raises(schema.SchemaError) as caught:
        get_engine()
    assert caught.value.exit_code == 4
    assert str(caught.value) == (
        f"store sqlite:///{legacy}: could not upgrade its schema from 0001 to 0005, "
        "nothing changed: disk I/O error"
    )
    assert set(declared(legacy).values()) == {"JSON"}
    db = sqlite3.connect(legacy)
    assert db.execute("SELECT count(*) FROM step").fetchone() == (2 * len(LEGACY_STEPS),)
    assert db.execute("SELECT typeof(result) FROM chain").fetchall() == [("real",), ("real",)]
    db.close()


def test_processes_opening_a_legacy_store_together_upgrade_it_once(
    legacy: Path, env: dict[str, str]
) -> None:
    command = [sys.executable, "-m", "taskchain", "result", "old0", "--json"]
    procs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [(p.returncode, err) for p, (_, err) in zip(procs, outputs, strict=True)] == [
        (0, "")
    ] * 3
    assert {json.loads(out)["result"] for out, _ in outputs} == {1e100}
    assert set(declared(legacy).values()) == {"TEXT"}
    db = sqlite3.connect(legacy)
    assert db.execute("SELECT count(*) FROM step").fetchone() == (2 * len(LEGACY_STEPS),)
    db.close()


@pytest.mark.postgres
def test_a_legacy_postgres_store_keeps_its_exact_values(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's json type kept the exact text: the upgrade only changes the column type."""
    from taskchain import settings as taskchain_settings
    from taskchain.store import dispose_engines

    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", postgres_url)
    taskchain_settings.configure()
    round_trip(1)  # creates the tables; now make them what the release created
    chain_id = uuid.uuid4().hex
    with get_engine().begin() as conn:
        for table, column in (("chain", "config"), ("chain", "result"), ("step", "params"),
                              ("step", "result")):  # fmt: skip
            conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE json "
                              f"USING {column}::json"))  # fmt: skip
        conn.execute(
            text("INSERT INTO chain (id, type, description, status, config, created_at, result, "
                 "step_count, cancel_requested, attempt) VALUES (:id, 'math_chain', '', "
                 "'COMPLETED', :config, now(), :result, 0, false, 1)"),
            {"id": chain_id, "config": '{"b": 1, "a": [2.50, "007"]}', "result": str(10**100)},
        )  # fmt: skip
        conn.execute(text("DROP TABLE alembic_version"))  # as the release had none
    dispose_engines()  # the next open finds the old column types
    with pytest.raises(schema.SchemaError, match="schema is at 0001, this taskchain needs 0005"):
        get_engine()  # PostgreSQL is upgraded on purpose, not on open
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    with session() as s:
        chain = queries.get_chain(session=s, chain_id=chain_id).chain
    assert chain.result == 10**100 and type(chain.result) is int
    assert same(chain.config, {"b": 1, "a": [2.5, "007"]})
    with get_engine().connect() as conn:
        kinds = conn.execute(
            text("SELECT DISTINCT data_type FROM information_schema.columns WHERE "
                 "table_schema = current_schema() AND column_name IN ('config', 'params', "
                 "'result')")
        ).all()  # fmt: skip
    assert kinds == [("text",)]


def test_columns_the_old_table_lacks_get_their_defaults(tmp_path: Path) -> None:
    """A column a newer model adds (here `attempt` and `dispatched_at`, as if they were new)
    is filled with its default in every old row, so later columns merge into this upgrade."""
    path = tmp_path / "store.db"
    db = sqlite3.connect(path)
    db.executescript(
        LEGACY_SQLITE.replace(", attempt INTEGER NOT NULL", "").replace(
            ", dispatched_at DATETIME", ""
        )
    )
    db.execute(
        "INSERT INTO chain VALUES ('c', 'math_chain', '', 'PENDING', '{}', "
        "'2025-01-01 00:00:00.000000', NULL, NULL, NULL, NULL, 1, 0)"
    )
    db.execute(
        "INSERT INTO step VALUES ('c', 0, 'add 2', 'math', '{\"operand\": 2}', 'PENDING', 't', "
        "0, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    db.commit()
    db.close()
    with session() as s:
        view = queries.get_chain(session=s, chain_id="c")
    assert (view.chain.attempt, view.steps[0].dispatched_at) == (1, None)
    assert view.steps[0].params == {"operand": 2}
