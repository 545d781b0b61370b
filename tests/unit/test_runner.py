"""The step runner against a real store, without a broker: claim, compute, record, follow."""

from __future__ import annotations

from taskchain.engine import runner
from taskchain.engine.submit import prepare
from taskchain.store import Status, queries, session, transitions


def record(config: dict) -> str:
    chain, steps = prepare("math_chain", config)
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    return chain.id


def view(chain_id: str) -> queries.ChainView:
    with session() as s:
        return queries.get_chain(session=s, chain_id=chain_id)


def test_steps_run_in_order_and_pass_results() -> None:
    chain_id = record({"numbers": [1, 2, 3, 4]})
    assert runner.execute_step(chain_id, 0, worker="t") == 1
    assert runner.execute_step(chain_id, 1, worker="t") == 2
    assert runner.execute_step(chain_id, 2, worker="t") is None
    final = view(chain_id)
    assert final.chain.status == Status.COMPLETED
    assert final.chain.result == 10
    assert [s.result for s in final.steps] == [3, 6, 10]
    assert final.chain.started_at <= final.chain.finished_at  # type: ignore[operator]


def test_redelivered_step_is_not_run_twice() -> None:
    chain_id = record({"numbers": [1, 2, 3]})
    assert runner.execute_step(chain_id, 0, worker="t") == 1
    # The broker delivers step 0 again (e.g. after a lost ack): it only points onward.
    assert runner.execute_step(chain_id, 0, worker="t") == 1
    assert view(chain_id).steps[0].attempts == 1


def test_failure_records_reason_and_stops() -> None:
    chain_id = record({"numbers": [4, 0, 2], "operation": "divide"})
    assert runner.execute_step(chain_id, 0, worker="t") is None
    final = view(chain_id)
    assert final.chain.status == Status.FAILED
    assert final.steps[0].error == "division by zero (4 // 0)"
    assert final.steps[1].status == Status.SKIPPED
    # A late delivery of the skipped step does nothing.
    assert runner.execute_step(chain_id, 1, worker="t") is None
    assert view(chain_id).steps[1].attempts == 0


def test_cancelled_chain_runs_no_further_step() -> None:
    chain_id = record({"numbers": [1, 2, 3]})
    assert runner.execute_step(chain_id, 0, worker="t") == 1
    with session(write=True) as s:
        transitions.cancel_chain(session=s, chain_id=chain_id)
    assert runner.execute_step(chain_id, 1, worker="t") is None
    final = view(chain_id)
    assert final.chain.status == Status.CANCELLED
    assert [s.status for s in final.steps] == [Status.COMPLETED, Status.SKIPPED]
