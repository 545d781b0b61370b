"""What one step costs the store: a fixed, small number of statements in two transactions.

Counted on SQLite by the driver (sqlite3's trace callback: every statement sent, BEGIN
included, COMMIT counted apart), since the hot path runs its statements and BEGIN on the
driver's connection; on PostgreSQL at psycopg's cursor (the hot path runs there too, past
SQLAlchemy's statement events); commits with the engine's `commit` event. A step is two short write
transactions: the claim (one UPDATE ... RETURNING that also reads the chain and the previous
result) and the record (the result, plus the next step's dispatch time or the chain's end).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event

from taskchain.engine import runner
from taskchain.engine.submit import prepare
from taskchain.store import Status, get_engine, queries, session, transitions
from tests.support import stores

#: Statements per step, by backend. SQLite sends BEGIN IMMEDIATE itself (one per transaction,
#: so that a writer locks up front); PostgreSQL's driver begins implicitly.
BUDGET = {"sqlite": 5, "postgresql": 3}
TRANSACTIONS = 2
#: Statements per submitted chain, whatever its length: the chain's INSERT and its steps'.
SUBMIT_BUDGET = {"sqlite": 3, "postgresql": 2}


@pytest.fixture(params=stores.BACKENDS)
def store_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    return stores.use(request, monkeypatch)


@dataclass
class Counter:
    statements: list[str] = field(default_factory=list)
    commits: int = 0

    def reset(self) -> None:
        self.statements.clear()
        self.commits = 0


@pytest.fixture
def counter(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    engine = get_engine()
    seen = Counter()
    sqlite = engine.dialect.name == "sqlite"

    def on_sql(statement: str) -> None:
        if statement.startswith("--") or statement in ("COMMIT", "ROLLBACK"):
            return  # a trigger's own line; commits are counted apart
        short = " ".join(statement.split())[:60]
        # sqlite3 traces a statement once per row of an executemany, and again for each of
        # its sub-programs (a foreign key's check): as SQLAlchemy counted it, one statement.
        if seen.statements[-1:] != [short]:
            seen.statements.append(short)

    traced: list[Any] = []

    def on_checkout(dbapi_conn: Any, *_args: Any) -> None:
        dbapi_conn.set_trace_callback(on_sql)
        traced.append(dbapi_conn)

    def on_commit(_conn: Any) -> None:
        seen.commits += 1

    listeners: list[tuple[str, Any]] = [("commit", on_commit)]
    if sqlite:
        listeners.append(("checkout", on_checkout))
    else:
        _count_at_psycopg(monkeypatch, seen)
    for name, listener in listeners:
        event.listen(engine, name, listener)
    yield seen
    for name, listener in listeners:
        event.remove(engine, name, listener)
    for dbapi_conn in traced:
        dbapi_conn.set_trace_callback(None)


def _count_at_psycopg(monkeypatch: pytest.MonkeyPatch, seen: Counter) -> None:
    """Every statement a psycopg cursor sends, SQLAlchemy's and the hot path's alike (it
    runs on the driver's cursor, past SQLAlchemy's events). psycopg's implicit BEGIN is
    not counted: psycopg sends it itself, as before the hot path ran on its cursor."""
    import psycopg

    def counted(method: Any) -> Any:
        def run(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            seen.statements.append(" ".join(str(query).split())[:60])
            return method(cursor, query, *args, **kwargs)

        return run

    for name in ("execute", "executemany"):
        monkeypatch.setattr(psycopg.Cursor, name, counted(getattr(psycopg.Cursor, name)))


def record(numbers: list[int]) -> str:
    chain, steps = prepare("math_chain", {"numbers": numbers})
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    return chain.id


def test_no_pre_ping(store_url: str) -> None:
    # A pre-ping is a `SELECT 1` round trip before every transaction, invisible to the
    # statement events: check the pool itself.
    assert get_engine().pool._pre_ping is False


def test_a_middle_and_the_last_step_stay_within_the_budget(counter: Counter) -> None:
    chain_id = record([1, 2, 3, 4])
    budget = BUDGET[get_engine().dialect.name]
    first = runner.run_step(chain_id, 0, worker="t")
    assert isinstance(first, runner.Next)
    counter.reset()

    middle = runner.run_step(chain_id, 1, worker="t")
    assert len(counter.statements) <= budget, counter.statements
    # Counted where they are sent: the claim's and the record's UPDATEs at least.
    assert sum(s.startswith("UPDATE step") for s in counter.statements) >= 2, counter.statements
    assert counter.commits == TRANSACTIONS
    if get_engine().dialect.name == "sqlite":  # each write transaction locks up front
        assert counter.statements.count("BEGIN IMMEDIATE") == TRANSACTIONS, counter.statements
    assert not any(s.startswith("SELECT") for s in counter.statements), counter.statements
    # The record hands over what dispatch needs, as recorded: no re-read to send it.
    with session() as s:
        step2 = queries.get_step(session=s, chain_id=chain_id, index=2)
    assert step2 is not None
    assert middle == runner.Next(
        2, step2.queue, step2.task_id, f"math_chain.{step2.name.split()[0]}"
    )
    assert step2.dispatched_at is not None

    counter.reset()
    # The end of a chain that is no workflow's job: the Celery task needs no look-up to
    # decide against a fan-in (the claim read the chain's workflow id).
    assert runner.run_step(chain_id, 2, worker="t") == runner.Ended(job=False)
    assert len(counter.statements) <= budget, counter.statements
    assert counter.commits == TRANSACTIONS
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    assert (view.chain.status, view.chain.result) == (Status.COMPLETED, 10)
    assert [st.result for st in view.steps] == [3, 6, 10]


def test_the_first_step_also_starts_the_chain(counter: Counter) -> None:
    chain_id = record([5, 6])
    counter.reset()
    assert runner.run_step(chain_id, 0, worker="t") == runner.Ended(job=False)
    # One more UPDATE (the chain PENDING -> RUNNING), on the first step only.
    assert len(counter.statements) <= BUDGET[get_engine().dialect.name] + 1
    with session() as s:
        chain = s.get(queries.ChainRecord, chain_id)
    assert chain is not None
    assert (chain.status, chain.result) == (Status.COMPLETED, 11)
    assert chain.started_at is not None and chain.finished_at is not None


def test_a_workflow_job_ends_with_its_fan_in_due(store_url: str) -> None:
    from taskchain.engine import tasks

    chain, steps = prepare("math_chain", {"numbers": [5, 6]})
    chain.workflow_id, chain.job = "wf-1", "totals"
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    ended = runner.run_step(chain.id, 0, worker="t")
    assert ended == runner.Ended(job=True)
    assert tasks._may_end_a_job(ended) is True
    assert tasks._may_end_a_job(runner.Ended(job=False)) is False
    assert tasks._may_end_a_job(None) is True  # not known: look
    assert tasks._may_end_a_job(runner.Failed("x")) is True


def test_the_careful_path_keeps_every_rule(store_url: str) -> None:
    """What the one-statement claim leaves alone is still decided, on both backends."""
    chain_id = record([1, 2, 3, 4])
    assert runner.execute_step(chain_id, 0, worker="t") == 1
    # A redelivered finished step only points at the next one, with what sending it needs.
    with session() as s:
        step1 = queries.get_step(session=s, chain_id=chain_id, index=1)
    assert step1 is not None
    assert runner.run_step(chain_id, 0, worker="t") == runner.Next(
        1, step1.queue, step1.task_id, f"math_chain.{step1.name.split()[0]}"
    )
    # A step held by a live lease is busy for another worker.
    with session(write=True) as s:
        transitions.claim_step(
            session=s, chain_id=chain_id, index=1, token="other", lease_until=runner.utcnow()
            + runner.timedelta(minutes=5),
        )  # fmt: skip
    assert isinstance(runner.run_step(chain_id, 1, worker="t"), runner.Busy)
    # Cancelled: the next step does not run.
    with session(write=True) as s:
        transitions.cancel_chain(session=s, chain_id=chain_id)
    assert runner.run_step(chain_id, 2, worker="t") is None
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    assert [st.status for st in view.steps] == [Status.COMPLETED, Status.CANCELLED, Status.SKIPPED]


def test_a_step_lost_too_often_is_given_up(store_url: str) -> None:
    chain_id = record([1, 2])
    with session(write=True) as s:
        step = queries.get_step(session=s, chain_id=chain_id, index=0)
        assert step is not None
        step.attempts = runner.MAX_ATTEMPTS
    lost = f"gave up after {runner.MAX_ATTEMPTS} attempts (its worker was lost each time)"
    assert runner.run_step(chain_id, 0, worker="t") == runner.Failed(lost)
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    assert view.chain.status == Status.FAILED
    assert view.steps[0].error == (
        f"gave up after {runner.MAX_ATTEMPTS} attempts (its worker was lost each time)"
    )


def test_submit_records_a_chain_in_one_short_transaction(
    counter: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskchain.engine import embedded
    from taskchain.engine.submit import submit
    from taskchain.store.models import StepRecord

    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(embedded, "send", lambda chain_id, index: sent.append((chain_id, index)))
    submitted = submit("math_chain", {"numbers": list(range(12))})
    # One INSERT for the chain, one for its 11 steps (BEGIN IMMEDIATE on SQLite).
    inserts = [s for s in counter.statements if s.startswith("INSERT")]
    assert len(inserts) == 2, counter.statements
    assert len(counter.statements) <= SUBMIT_BUDGET[get_engine().dialect.name]
    assert counter.commits == 1
    assert sent == [(submitted.chain_id, 0)]
    with session() as s:
        view = queries.get_chain(session=s, chain_id=submitted.chain_id)
    assert [st.index for st in view.steps] == list(range(11))
    assert all(st.status == Status.PENDING and st.attempts == 0 for st in view.steps)
    assert view.steps[0].dispatched_at == view.chain.created_at
    assert view.steps[1].dispatched_at is None
    # Every column of the step table is given in a new step's row.
    row = queries.step_row(
        chain_id="c", index=0, name="n", queue="q", params={}, task_id="t", dispatched_at=None
    )
    assert set(row) == set(StepRecord.__table__.c.keys())  # type: ignore[attr-defined]
