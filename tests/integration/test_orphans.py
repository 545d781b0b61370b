"""A real embedded `taskchain submit`, killed with SIGKILL mid-chain: once its lease expires
every read shows the chain orphaned, `watch` stops waiting on it, and `retry` finishes it.
The same for a workflow whose embedded `taskchain run` is killed: `status` shows it orphaned
and `retry` takes its jobs over, in its own process or, with a broker set, on the workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from taskchain.store import ChainRecord, Status, queries, session
from taskchain.store import workflows as wfstore
from taskchain.timeparse import iso
from tests.support import proc
from tests.support.chains import executions

LEASE = 5  # seconds; the runner renews every third of it
SLOW = json.dumps({"steps": [{"sleep": 0.1}, {"sleep": 12.0}, {"sleep": 0.1}]})


def view(chain_id: str) -> queries.ChainView:
    with session() as s:
        return queries.get_chain(session=s, chain_id=chain_id)


def until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `check()` holds; fails the test after `timeout`."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.1)
    return time.monotonic() - start


def test_a_killed_embedded_submit_leaves_an_orphan_that_retry_finishes(
    env: dict[str, str], workspace: Path
) -> None:
    penv = {**env, "TASKCHAIN_PLUGINS": "tests.support.chains", "TASKCHAIN_STEP_LEASE": str(LEASE)}
    submitter = subprocess.Popen(
        [*proc.TASKCHAIN, "submit", "probe_chain", "--config", SLOW, "-q"],
        env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watcher: subprocess.Popen[str] | None = None
    try:
        assert submitter.stdout is not None
        chain_id = submitter.stdout.readline().strip()
        assert len(chain_id) == 32, submitter.communicate()
        until(lambda: view(chain_id).steps[1].status == Status.RUNNING, 30, "step 2 running")
        # `watch` without an id, started while the chain runs: it must end once it is orphaned.
        watcher = subprocess.Popen(
            [*proc.TASKCHAIN, "watch", "--timeout", "120s"],
            env=penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # Past the lease taken at submit: only the heartbeat keeps the chain its runner's.
        until(lambda: view(chain_id).chain.runner_lease_expires_at is not None, 5, "lease")
        time.sleep(LEASE + 1)
        alive = proc.run(["status", chain_id, "--json"], penv)
        assert json.loads(alive.stdout)["orphaned"] is False, alive.stdout
        assert view(chain_id).steps[1].status == Status.RUNNING  # still in the 12 s step
        submitter.send_signal(signal.SIGKILL)
        assert submitter.wait(timeout=10) == -signal.SIGKILL
        seen = until(lambda: queries.is_orphaned(view(chain_id).chain), 3 * LEASE, "orphaned")
        print(f"[figure] orphaned {seen:.1f}s after the SIGKILL (lease {LEASE}s)")
        assert seen <= LEASE + 2

        watched = watcher.communicate(timeout=30)
        assert watcher.returncode == 1, watched
        assert watched[0].splitlines()[-1] == (
            "watched 1 chain(s): 1 RUNNING (1 of them orphaned: their runner died; taskchain "
            "retry ID)"
        )

        doc = json.loads(proc.run(["status", chain_id, "--json"], penv).stdout)
        assert (doc["status"], doc["orphaned"]) == ("RUNNING", True)
        expired = iso(view(chain_id).chain.runner_lease_expires_at)
        detail = (
            f"its embedded runner (pid {submitter.pid} on host {socket.gethostname()}) died "
            f"(its lease expired at {expired}); "
            f"resume it with: taskchain retry {chain_id}"
        )
        text = proc.run(["status", chain_id], penv).stdout.splitlines()
        assert text[0] == f"chain {chain_id}  probe_chain  RUNNING ORPHANED"
        assert text[-1] == f"orphaned: {detail}"

        started = time.monotonic()
        again = proc.run(["watch", "--timeout", "60s"], penv)
        assert (again.returncode, again.stdout) == (0, "")
        assert (
            again.stderr
            == f"not watched: chain {chain_id} is orphaned: {detail}\nno active chains\n"
        )
        assert time.monotonic() - started < 20
        one = proc.run(["watch", chain_id[:8], "--timeout", "60s"], penv)
        assert one.returncode == 1
        assert one.stderr == f"taskchain: error: chain {chain_id} is orphaned: {detail}\n"
        waited = proc.run(["result", chain_id, "--wait", "--timeout", "60s"], penv)
        assert (waited.returncode, waited.stdout) == (1, "")

        retried = proc.run(["retry", chain_id[:8]], penv, timeout=90)
        assert retried.returncode == 0, retried.stderr
        assert retried.stderr.splitlines()[0] == f"retrying chain {chain_id} from step 2"
        result = proc.run(["result", chain_id, "--json"], penv)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {
            "schema_version": 1, "id": chain_id, "status": "COMPLETED", "result": 3,
            "error": None,
        }  # fmt: skip
        # Step 1 kept its result and was not run again; the killed step 2 never finished
        # before, so each step finished exactly once.
        assert sorted(executions(workspace)) == [(chain_id, 0), (chain_id, 1), (chain_id, 2)]
        assert view(chain_id).chain.attempt == 2
    finally:
        for child in (submitter, watcher):
            if child is not None and child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(timeout=10)


# A workflow whose embedded `taskchain run` dies: every unfinished job is orphaned with it;
# `retry` on the workflow takes them over and runs it to the end. The job `slow` holds its
# second step until the test opens its gate (a file in the workspace): the kill lands in it.
GATE = "slow-gate"
WORKFLOW = {
    "name": "orphan-wf",
    "jobs": {
        "first": {"type": "probe_chain", "config": {"steps": [{"sleep": 0.1}]}},
        "slow": {
            "type": "probe_chain", "needs": ["first"],
            "config": {"steps": [{"sleep": 0.1}, {"wait_for": GATE}]},
        },
        "quick": {"type": "probe_chain", "needs": ["first"], "config": {"steps": [{}]}},
        "last": {"type": "probe_chain", "needs": ["slow", "quick"], "config": {"steps": [{}]}},
    },
}  # fmt: skip


def flow(workflow_id: str) -> wfstore.WorkflowView:
    with session() as s:
        found = wfstore.get(session=s, workflow_id=workflow_id)
    assert found is not None
    return found


def jobs(wf_id: str) -> dict[str, ChainRecord]:
    return {c.job or "": c for c in flow(wf_id).jobs}


def orphan_a_workflow(penv: dict[str, str], tmp_path: Path) -> tuple[str, int]:
    """Run WORKFLOW with an embedded `taskchain run`, SIGKILL it while `slow` waits at its
    gate, and wait until the workflow is orphaned: (its id, the dead pid)."""
    path = tmp_path / "orphan-wf.json"
    path.write_text(json.dumps(WORKFLOW))
    runner = proc.spawn_taskchain(
        ["run", str(path), "-q"], penv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert runner.stdout is not None
    wf_id = runner.stdout.readline().strip()
    assert len(wf_id) == 32, runner.communicate()

    def slow_steps() -> list[queries.StepRecord]:
        return view(jobs(wf_id)["slow"].id).steps

    until(lambda: len(slow_steps()) == 2 and slow_steps()[1].status == Status.RUNNING, 30, "slow")
    time.sleep(LEASE + 1)  # past the leases taken at start: only the heartbeat keeps them
    alive = json.loads(proc.run(["status", wf_id, "--json"], penv).stdout)
    assert (alive["status"], alive["orphaned"]) == ("RUNNING", False)
    busy = proc.run(["retry", wf_id], penv)
    assert (busy.returncode, busy.stderr) == (
        2,
        f"taskchain: error: workflow {wf_id} is RUNNING: only FAILED, CANCELLED or orphaned "
        "workflows can be retried\n",
    )
    runner.send_signal(signal.SIGKILL)
    assert runner.wait(timeout=10) == -signal.SIGKILL
    seen = until(lambda: wfstore.is_orphaned(flow(wf_id)), 3 * LEASE, "orphaned")
    print(f"[figure] workflow orphaned {seen:.1f}s after the SIGKILL (lease {LEASE}s)")
    before = jobs(wf_id)
    assert {job: c.status for job, c in before.items()} == {
        "first": Status.COMPLETED, "slow": Status.RUNNING, "quick": Status.COMPLETED,
        "last": Status.PENDING,
    }  # fmt: skip
    assert before["last"].step_count == 0  # not started: the fan-in waits for `slow`
    return wf_id, runner.pid


def test_a_killed_embedded_run_leaves_an_orphaned_workflow_that_retry_takes_over(
    env: dict[str, str], workspace: Path, tmp_path: Path
) -> None:
    penv = {**env, "TASKCHAIN_PLUGINS": "tests.support.chains", "TASKCHAIN_STEP_LEASE": str(LEASE)}
    wf_id, dead = orphan_a_workflow(penv, tmp_path)
    before = jobs(wf_id)

    doc = json.loads(proc.run(["status", wf_id, "--json"], penv).stdout)
    assert (doc["status"], doc["orphaned"]) == ("RUNNING", True)
    expired = iso(
        max(c.runner_lease_expires_at for c in before.values() if c.runner_lease_expires_at)
    )
    text = proc.run(["status", wf_id], penv).stdout.splitlines()
    assert text[-1] == (
        f"orphaned: its embedded runner (pid {dead} on host {socket.gethostname()}) died "
        f"(its lease expired at {expired}); resume it with: taskchain retry {wf_id}"
    )

    # Followers end at once, exit 1, saying so (as for an orphaned chain): nothing will move.
    orphaned = f"taskchain: error: workflow {wf_id} is orphaned: its embedded runner"
    for args in (["watch", wf_id], ["watch", wf_id, "--json"], ["result", wf_id, "--wait"]):
        followed = proc.run(args, penv)
        assert followed.returncode == 1, (args, followed.stderr)
        assert followed.stderr.startswith(orphaned), (args, followed.stderr)

    (workspace / GATE).touch()  # the step the kill interrupted may end now, when run again
    retried = proc.run(["retry", wf_id[:8]], penv, timeout=90)
    assert retried.returncode == 0, retried.stderr
    assert retried.stderr.splitlines()[0] == (
        f"taking over orphaned workflow {wf_id}: 1 job(s) resumed"
    )
    after = jobs(wf_id)
    assert flow(wf_id).workflow.status == Status.COMPLETED
    assert {job: (c.status, c.attempt) for job, c in after.items()} == {
        "first": (Status.COMPLETED, 1), "slow": (Status.COMPLETED, 2),
        "quick": (Status.COMPLETED, 1), "last": (Status.COMPLETED, 1),
    }  # fmt: skip
    # The retry's process ran what it took over: `last`, started after it, is its own.
    assert after["last"].runner is not None and f":{dead}:" not in after["last"].runner
    # Each step finished exactly once: the killed step never finished before the retry.
    assert sorted(executions(workspace)) == sorted(
        (c.id, st.index) for c in after.values() for st in view(c.id).steps
    )
    again = proc.run(["retry", wf_id], penv)
    assert again.returncode == 2 and "is COMPLETED" in again.stderr


@pytest.mark.redis
@pytest.mark.parametrize("retried", ["workflow", "job"])
def test_an_orphaned_workflow_retried_with_a_broker_goes_on_on_the_workers(
    env: dict[str, str], redis_url: str, workspace: Path, tmp_path: Path, retried: str
) -> None:
    """`retry` on the workflow, or on the one job that was running (a chain retry): either
    way the workers run what is left, and the job started after it (`last`) is theirs, not
    the dead process's, so that the recovery sweep looks after it too."""
    penv = {**env, "TASKCHAIN_PLUGINS": "tests.support.chains", "TASKCHAIN_STEP_LEASE": str(LEASE)}
    wf_id, _ = orphan_a_workflow(penv, tmp_path)
    denv = {**penv, "TASKCHAIN_BROKER_URL": redis_url}
    (workspace / GATE).touch()
    target = wf_id if retried == "workflow" else jobs(wf_id)["slow"].id
    with proc.worker(denv, tmp_path / "w.log", concurrency=1):
        done = proc.run(["retry", target, "--wait", "-q"], denv, timeout=90)
        assert (done.returncode, done.stderr) == (0, "")
        until(lambda: flow(wf_id).workflow.status.finished, 60, "the workflow finished")
    after = jobs(wf_id)
    assert flow(wf_id).workflow.status == Status.COMPLETED
    assert [(c.status, c.runner) for c in (after["slow"], after["last"])] == [
        (Status.COMPLETED, None), (Status.COMPLETED, None)
    ]  # fmt: skip
    # The worker ran what was left: the interrupted step and the job that waited for it.
    assert [st.worker.split("@")[0] for st in view(after["last"].id).steps if st.worker] == ["w1"]
    assert (view(after["slow"].id).steps[1].worker or "").startswith("w1@")
    assert sorted(executions(workspace)) == sorted(
        (c.id, st.index) for c in after.values() for st in view(c.id).steps
    )
