"""The step runner against a real store, without a broker: claim, compute, record, follow."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from taskchain import settings
from taskchain.engine import runner
from taskchain.engine.submit import prepare
from taskchain.store import Status, queries, session, transitions

#: Every test here runs on SQLite and on PostgreSQL (the `store_url` fixture's two params).
pytestmark = pytest.mark.usefixtures("store_url")


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
    # The task turns this into Celery's FAILURE with the same reason.
    assert runner.execute_step(chain_id, 0, worker="t") == runner.Failed(
        "division by zero (4 // 0)"
    )
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


# ---- the workspace the chain was validated against --------------------------------------


def work_elsewhere(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """From now on this process (as a worker would) uses `folder` as its workspace."""
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv("TASKCHAIN_WORKSPACE", str(folder))
    settings.configure()


def test_a_worker_in_another_workspace_fails_the_step_at_claim(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_id = record({"numbers": [1, 2, 3]})
    work_elsewhere(monkeypatch, tmp_path / "elsewhere")
    host = socket.gethostname()
    outcome = runner.execute_step(chain_id, 0, worker=f"w1@{host}")
    assert isinstance(outcome, runner.Failed)
    assert outcome.reason.startswith("workspace mismatch: worker ")
    final = view(chain_id)
    assert final.chain.status == Status.FAILED
    assert final.chain.error == (
        f"step 1 (add 2) failed: workspace mismatch: worker w1@{host} uses "
        f"{(tmp_path / 'elsewhere').resolve()}, the chain was submitted against "
        f"{workspace.resolve()} on host {host}; set TASKCHAIN_WORKSPACE the same on both"
    )
    assert [(s.status, s.attempts) for s in final.steps] == [
        (Status.FAILED, 0), (Status.SKIPPED, 0),
    ]  # fmt: skip


def test_the_mismatch_names_the_host_when_the_worker_name_lacks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_id = record({"numbers": [1, 2]})
    work_elsewhere(monkeypatch, tmp_path / "elsewhere")
    assert isinstance(runner.execute_step(chain_id, 0, worker="w1"), runner.Failed)
    error = view(chain_id).steps[0].error or ""
    assert error.startswith(f"workspace mismatch: worker w1 on {socket.gethostname()} uses ")


def test_the_same_folder_by_another_path_or_an_old_chain_is_no_mismatch(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_id = record({"numbers": [1, 2]})
    old = record({"numbers": [3, 4]})
    with session(write=True) as s:  # recorded before chains knew their workspace
        chain = s.get(queries.ChainRecord, old)
        assert chain is not None
        chain.workspace = None
    (tmp_path / "link").symlink_to(workspace)
    work_elsewhere(monkeypatch, tmp_path / "link")
    assert runner.execute_step(chain_id, 0, worker="t") is None
    assert view(chain_id).chain.result == 3
    work_elsewhere(monkeypatch, tmp_path / "elsewhere")
    assert runner.execute_step(old, 0, worker="t") is None
    assert view(old).chain.result == 7


def test_an_embedded_worker_leaves_a_chain_another_process_took_over() -> None:
    chain_id = record({"numbers": [1, 2]})
    with session(write=True) as s:
        chain = s.get(queries.ChainRecord, chain_id)
        assert chain is not None
        chain.runner = "otherhost:1:abcdef12"  # a retry in another process runs it now
    assert runner.execute_step(chain_id, 0, worker="t") is None
    assert view(chain_id).steps[0].status == Status.PENDING
