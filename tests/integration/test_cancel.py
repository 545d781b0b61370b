"""cancel in distributed mode: no step starts after it; --terminate stops the running one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taskchain import core
from taskchain.store import Status, queries, session
from tests.integration import faults
from tests.support import proc
from tests.support.chains import executions


@pytest.fixture
def probe_env(redis_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = faults.worker_env(redis_env)
    faults.use(monkeypatch, env)
    return env


def wait_running(chain_id: str, index: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session() as s:
            step = queries.get_step(session=s, chain_id=chain_id, index=index)
        if step is not None and step.status == Status.RUNNING:
            return
        time.sleep(0.05)
    pytest.fail(f"step {index} never ran")


@pytest.mark.parametrize("terminate", [False, True])
def test_cancel_a_running_chain(probe_env: dict[str, str], tmp_path: Path, terminate: bool) -> None:
    with proc.worker(probe_env, tmp_path / "w.log", concurrency=2) as worker:
        chain_id = faults.probe([{"sleep": 0.2}, {"sleep": 3.0}, {"sleep": 0.2}, {"sleep": 0.2}])
        wait_running(chain_id, 1)
        args = ["cancel", chain_id] + (["--terminate"] if terminate else [])
        done = proc.run(args, probe_env)
        assert (done.returncode, done.stderr) == (0, f"cancelled {chain_id}\n")
        time.sleep(4.0)  # long enough for step 2 to have finished and step 3 to have started
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
    ran = [index for cid, index in executions(faults.workspace_of(probe_env)) if cid == chain_id]
    # Step 2 finishes unless terminated; no step after it ever starts.
    assert ran == ([0] if terminate else [0, 1])
    assert core.exit_code(view.chain.status) == 1
