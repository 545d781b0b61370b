"""The hot path's statements (`db.Prepared`): on SQLite they run on the driver's cursor, and
what they write and read is exactly what SQLAlchemy's own execution writes and reads; a driver
error comes out as SQLAlchemy raises it. On PostgreSQL they are SQLAlchemy's execution."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from taskchain import settings
from taskchain.engine import runner
from taskchain.engine.submit import prepare
from taskchain.errors import StoreUnavailable
from taskchain.store import ChainRecord, StepRecord, get_engine, queries, session, transitions
from taskchain.store.db import Prepared, transaction
from taskchain.store.models import Status, utcnow

#: Values a claim reads back (config, params, the previous result) and a record writes.
ODD = {
    "big": 10**100,
    "neg": -(2**63) - 1,
    "float": 1e308,
    "zero": -0.0,
    "text": "007",
    "unicode": "ünïcødé ✓ \U0001f600",
    "lone": "\udc80",
    "nested": [[], {}, "", 0, False, None],
}


def _chain(steps: int = 2) -> str:
    chain_id = uuid.uuid4().hex
    chain = ChainRecord(id=chain_id, type="math_chain", config=ODD, step_count=steps)
    rows = [
        StepRecord(chain_id=chain_id, index=i, name=f"s{i}", queue="q", params=ODD, task_id=f"t{i}")
        for i in range(steps)
    ]
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=rows)
    return chain_id


def _claim_and_record(chain_id: str) -> tuple[list[Any], list[Any]]:
    """Run both steps through the hot path; what it returned, and the rows as stored."""
    lease = utcnow() + timedelta(minutes=5)
    got: list[Any] = []
    for index in (0, 1):
        with transaction(write=True) as conn:
            claimed = transitions.claim_and_read(
                conn, chain_id=chain_id, index=index, token=f"w{index}", lease_until=lease,
                workspace="/nowhere", max_attempts=5,
            )  # fmt: skip
        with transaction(write=True) as conn:
            recorded = transitions.record_result(
                conn, chain_id=chain_id, index=index, token=f"w{index}",
                result={"step": index, **ODD}, last=index == 1,
            )  # fmt: skip
        got += [claimed, recorded]
    with get_engine().connect() as conn:
        stored = [
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT status, attempts, worker, result, started_at, finished_at, "
                    "lease_expires_at, dispatched_at FROM step WHERE chain_id = :c "
                    'ORDER BY "index"'
                ),
                {"c": chain_id},
            )
        ]
        stored += [
            tuple(row)
            for row in conn.execute(
                text("SELECT status, result, started_at, finished_at FROM chain WHERE id = :c"),
                {"c": chain_id},
            )
        ]
    return got, stored


def _shape(values: list[Any], chain_id: str) -> str:
    """Comparable across two chains: ids and times (a few ms apart) masked."""

    def mask(value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(mask(v) for v in value)
        if isinstance(value, datetime):
            return f"<time {value.utcoffset()}>"
        return value

    masked = repr([mask(v) for v in values]).replace(chain_id, "<id>")
    # A time as SQLite's column holds it: its digits masked, its format kept.
    times = r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d)?"
    return re.sub(times, lambda found: re.sub(r"\d", "9", found.group()), masked)


@pytest.mark.usefixtures("store_url")
def test_the_driver_path_reads_and_writes_what_sqlalchemy_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = _chain()
    got_fast, stored_fast = _claim_and_record(fast)
    monkeypatch.setattr(Prepared, "_plan", lambda self, dialect: None)  # SQLAlchemy's own
    slow = _chain()
    got_slow, stored_slow = _claim_and_record(slow)

    assert _shape(got_fast, fast) == _shape(got_slow, slow)
    assert _shape(stored_fast, fast) == _shape(stored_slow, slow)
    # Not only alike: right. The claim read exact values, and the previous step's result.
    first, recorded, second, ended = got_fast
    assert first.params == ODD and first.config == ODD and first.previous is None
    assert [type(first.params[k]) for k in ODD] == [type(v) for v in ODD.values()]
    assert str(first.params["zero"]) == "-0.0"
    assert recorded == transitions.Recorded(("q", "t1", "s1"))
    assert second.previous == {"step": 0, **ODD} and second.step_count == 2
    assert ended == transitions.Recorded(None)
    with session() as s:
        view = queries.get_chain(session=s, chain_id=fast)
    assert view.chain.status == Status.COMPLETED and view.chain.result == {"step": 1, **ODD}
    times = [view.chain.started_at, view.chain.finished_at, view.steps[1].dispatched_at]
    times += [t for st in view.steps for t in (st.started_at, st.finished_at)]
    assert all(t is not None and t.utcoffset() == timedelta(0) for t in times), times
    assert [st.status for st in view.steps] == [Status.COMPLETED, Status.COMPLETED]


def test_on_sqlite_and_postgres_it_runs_on_the_driver(store_url: str) -> None:
    dialect = get_engine().dialect
    assert (dialect.name, dialect.driver) in {("sqlite", "pysqlite"), ("postgresql", "psycopg")}
    for statement in (transitions._HOT_COMPLETE, transitions._CLAIM_AND_READ[False]):
        assert statement._plan(dialect) is not None


@pytest.mark.postgres
@pytest.mark.parametrize("driver", [True, False], ids=["driver", "sqlalchemy"])
def test_a_postgres_connection_the_server_dropped_is_replaced_and_the_step_still_runs(
    driver: bool, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection whose server process went away (a restart, a failover, an idle
    timeout) fails the claim's first statement before anything is written; it is
    invalidated as SQLAlchemy invalidates it, so the store retry runs on a new one."""
    import psycopg

    if not driver:
        monkeypatch.setattr(Prepared, "_plan", lambda self, dialect: None)
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", postgres_url)
    settings.configure()
    chain, steps = prepare("math_chain", {"numbers": [1, 2, 3]})  # two steps: 3, then 6
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    chain_id = chain.id
    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://")

    def drop_the_pooled_connection() -> None:
        with transaction(write=True) as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with psycopg.connect(admin, autocommit=True) as killer:
            assert killer.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)

    lease = utcnow() + timedelta(minutes=5)
    claim = {
        "chain_id": chain_id, "index": 0, "token": "w", "lease_until": lease,
        "workspace": chain.workspace, "max_attempts": 5,
    }  # fmt: skip
    drop_the_pooled_connection()
    with pytest.raises(StoreUnavailable) as lost, transaction(write=True) as conn:
        transitions.claim_and_read(conn, **claim)
    assert isinstance(lost.value.__cause__, DBAPIError)
    assert lost.value.__cause__.connection_invalidated is True
    with transaction(write=True) as conn:  # what the store retry runs: a new connection
        assert transitions.claim_and_read(conn, **claim) is not None
    drop_the_pooled_connection()
    with pytest.raises(StoreUnavailable), transaction(write=True) as conn:
        transitions.record_result(conn, chain_id=chain_id, index=0, token="w", result=3, last=False)
    with transaction(write=True) as conn:
        recorded = transitions.record_result(
            conn, chain_id=chain_id, index=0, token="w", result=3, last=False
        )
    assert recorded is not None and recorded.next is not None
    drop_the_pooled_connection()
    outcome = runner.run_step(chain_id, 1, worker="t")  # retried inside, then done
    assert isinstance(outcome, runner.Ended)
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    assert [st.status for st in view.steps] == [Status.COMPLETED, Status.COMPLETED]
    assert [st.result for st in view.steps] == [3, 6] and view.chain.result == 6


def test_a_taken_over_lease_records_nothing() -> None:
    chain_id = _chain()
    lease = utcnow() + timedelta(minutes=5)
    with transaction(write=True) as conn:
        assert transitions.claim_and_read(
            conn, chain_id=chain_id, index=0, token="old", lease_until=lease,
            workspace="/nowhere", max_attempts=5,
        )  # fmt: skip
    with transaction(write=True) as conn:
        conn.execute(text("UPDATE step SET worker = 'new' WHERE chain_id = :c"), {"c": chain_id})
    with transaction(write=True) as conn:
        assert (
            transitions.record_result(
                conn, chain_id=chain_id, index=0, token="old", result=1, last=False
            )
            is None
        )
    with session() as s:
        step = queries.get_step(session=s, chain_id=chain_id, index=0)
    assert step is not None and (step.status, step.result) == (Status.RUNNING, None)


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it() -> None:
    missing = Table("no_such_table", MetaData(), Column("id", Integer))
    statement = Prepared(update(missing).where(missing.c.id == bindparam("p_id")).values(id=1))
    with pytest.raises(OperationalError, match="no such table"), get_engine().begin() as conn:
        statement.rowcount(conn, {"p_id": 1})


def test_outside_a_transaction_it_begins_one() -> None:
    chain_id = _chain(1)
    with get_engine().connect() as conn:
        assert not conn.in_transaction()
        changed = transitions._HOT_START_CHAIN.rowcount(
            conn, {"p_chain_id": chain_id, "p_now": utcnow()}
        )
        assert changed == 1 and conn.in_transaction()
        conn.rollback()
    with session() as s:
        chain = s.get(ChainRecord, chain_id)
    assert chain is not None and chain.status == Status.PENDING


@pytest.mark.parametrize("driver", [True, False], ids=["driver", "sqlalchemy"])
def test_an_insert_of_many_rows_writes_them_all_and_a_duplicate_is_an_integrity_error(
    driver: bool, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not driver:
        monkeypatch.setattr(Prepared, "_plan", lambda self, dialect: None)
    rows = []
    for n in range(3):
        chain = queries.chain_row(
            chain_id=uuid.uuid4().hex, type="math_chain", description=f"d{n}", config=ODD,
            step_count=1, created_at=utcnow(), workspace="/nowhere", submit_host="h",
        )  # fmt: skip
        step = queries.step_row(
            chain_id=chain["id"], index=0, name="add", queue="math", params=ODD,
            task_id=uuid.uuid4().hex, dispatched_at=chain["created_at"],
        )  # fmt: skip
        rows.append((chain, [step]))
    with transaction(write=True) as conn:
        queries.insert_chains(conn, rows)
    with session() as s:
        views = [queries.get_chain(session=s, chain_id=chain["id"]) for chain, _ in rows]
    assert [v.chain.description for v in views] == ["d0", "d1", "d2"]
    assert all(v.chain.config == ODD and v.steps[0].params == ODD for v in views)
    assert all(v.steps[0].dispatched_at == v.chain.created_at for v in views)
    with pytest.raises(IntegrityError), transaction(write=True) as conn:
        queries.insert_chains(conn, rows[1:2])
    with session() as s:  # the failed transaction left nothing behind
        again = queries.get_chain(session=s, chain_id=rows[1][0]["id"])
    assert again.chain.description == "d1" and len(again.steps) == 1
