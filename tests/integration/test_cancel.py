"""cancel in distributed mode: no step starts after it; --terminate stops the running one.
On Redis and on RabbitMQ (`broker_env`): the revoke is a broadcast over the broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskchain import core
from taskchain.store import Status, queries, session
from tests.integration import faults
from tests.support import proc, services
from tests.support.probe import Gates, executions
from tests.support.waiting import wait_until


@pytest.fixture
def probe_env(broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = faults.worker_env(broker_env)
    faults.use(monkeypatch, env)
    return env


def step_status(chain_id: str, index: int) -> Status | None:
    with session() as s:
        step = queries.get_step(session=s, chain_id=chain_id, index=index)
    return None if step is None else step.status


@pytest.mark.parametrize("terminate", [False, True])
def test_cancel_a_running_chain(
    probe_env: dict[str, str], workspace: Path, tmp_path: Path, terminate: bool
) -> None:
    gate = Gates(workspace, steps=1)
    with proc.worker(probe_env, tmp_path / "w.log", concurrency=2) as worker:
        # Step 2 runs until the test opens its gate: the cancel surely comes while it runs.
        chain_id = faults.probe([{"sleep": 0.2}, *gate.steps, {"sleep": 0.2}, {"sleep": 0.2}])
        wait_until(lambda: step_status(chain_id, 1) == Status.RUNNING, message="step 2 running")
        args = ["cancel", chain_id] + (["--terminate"] if terminate else [])
        done = proc.run(args, probe_env)
        assert (done.returncode, done.stderr) == (0, f"cancelled {chain_id}\n")
        if not terminate:
            gate.open(1)  # step 2 may finish; what matters is that step 3 never starts
            wait_until(lambda: (chain_id, 1) in executions(workspace), message="step 2 finishing")
        # Whatever the worker would still do for this chain (a revoked message, step 3 sent
        # after step 2) is queued or in flight until it is done: wait until nothing is.
        wait_until(
            lambda: services.broker_idle(probe_env["TASKCHAIN_BROKER_URL"]),
            message="the worker idle, its queues empty",
        )
        if terminate:
            gate.open(1)  # had the step survived --terminate, it would now finish and log
            wait_until(
                lambda: services.broker_idle(probe_env["TASKCHAIN_BROKER_URL"]),
                message="the worker idle after the gate opened",
            )
        assert worker.poll() is None
        watched = proc.run(["watch", chain_id], probe_env)
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    assert watched.returncode == 1
    assert view.chain.status == Status.CANCELLED
    assert [st.status for st in view.steps] == [
        Status.COMPLETED,
        Status.CANCELLED,
        Status.SKIPPED,
        Status.SKIPPED,
    ]
    ran = [index for cid, index in executions(workspace) if cid == chain_id]
    # Step 2 finishes unless terminated; no step after it ever starts.
    assert ran == ([0] if terminate else [0, 1])
    assert core.exit_code(view.chain.status) == 1
