"""A workflow loses nothing: a worker killed mid-workflow, a broker restarted mid-workflow, a
process killed between a job's end and its fan-in. Each ends COMPLETED with every job
COMPLETED once and every step recorded once, proven from the store (attempts, step records)
and from the probe's log of executions. Each test prints the figure it proves ([figure]).

The workflows are probe chains (tests/support/chains.py): one root job, a fan-out of jobs
that need it, and one job that needs them all (the fan-in)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from taskchain.engine import workflow as engine
from taskchain.store import ChainRecord, Status, queries, session
from taskchain.store import workflows as wfstore
from taskchain.workflows import spec
from tests.integration import faults
from tests.support import proc, services
from tests.support.probe import executions
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(600)

#: Steps of the fan-out jobs: long enough that a kill lands while they run.
SLOW = [{"sleep": 1.0}, {"sleep": 0.3}]


def fan(width: int, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """root -> part1..partN -> join, every job a probe chain."""
    jobs: dict[str, Any] = {"root": {"type": "probe_chain", "config": {"steps": [{}]}}}
    for n in range(1, width + 1):
        jobs[f"part{n}"] = {
            "type": "probe_chain", "needs": ["root"], "config": {"steps": steps},
        }  # fmt: skip
    jobs["join"] = {
        "type": "probe_chain", "needs": [f"part{n}" for n in range(1, width + 1)],
        "config": {"steps": [{}, {}]},
    }  # fmt: skip
    return {"name": f"fan-{width}", "jobs": jobs}


def start(document: dict[str, Any], workspace: Path) -> str:
    """Validate and run a workflow from this (client) process; its id."""
    loaded = spec.validate(document, source="workflow test", workspace=workspace)
    return engine.run(loaded).workflow_id


def view(workflow_id: str) -> wfstore.WorkflowView:
    with session() as s:
        found = wfstore.get(session=s, workflow_id=workflow_id)
    assert found is not None
    return found


def steps_of(chain: ChainRecord) -> list[queries.StepRecord]:
    with session() as s:
        return queries.get_chain(session=s, chain_id=chain.id).steps


def wait_workflow(workflow_id: str, timeout: float) -> float:
    """Seconds until the workflow finished; fails with its jobs' states otherwise."""
    began = time.monotonic()
    wait_until(
        lambda: view(workflow_id).workflow.status.finished,
        timeout=timeout,
        interval=0.2,
        message=lambda: str([(c.job, c.status.value, c.error) for c in view(workflow_id).jobs]),
    )
    return time.monotonic() - began


def running_jobs(workflow_id: str) -> list[str]:
    """Jobs with a step RUNNING (claimed by a worker) now."""
    running = {chain_id for chain_id, _, _ in faults.running_steps()}
    return [c.job or "" for c in view(workflow_id).jobs if c.id in running]


def parts_running(workflow_id: str) -> list[str]:
    return [job for job in running_jobs(workflow_id) if job.startswith("part")]


def check_exactly_once(workflow_id: str, workspace: Path, *, in_flight: int) -> Counter:
    """Every job COMPLETED in its first run, every step COMPLETED with its result; only the
    steps the fault caught mid-computation (`in_flight` of them) were claimed once more, and
    at most they were computed twice. Returns how often each (chain, step) was computed."""
    final = view(workflow_id)
    assert final.workflow.status == Status.COMPLETED, final.workflow.error
    assert [(c.job, c.status, c.attempt) for c in final.jobs] == [
        (c.job, Status.COMPLETED, 1) for c in final.jobs
    ]
    steps = [st for c in final.jobs for st in steps_of(c)]
    assert all(st.status == Status.COMPLETED and st.result == st.index + 1 for st in steps)
    # One record per step: each step the fault left RUNNING was claimed once more (after its
    # lease ran out), no other step was claimed twice.
    assert sum(st.attempts for st in steps) - len(steps) == in_flight
    runs = Counter(executions(workspace))
    assert sorted(runs) == sorted((st.chain_id, st.index) for st in steps)  # each step ran
    assert sum(n - 1 for n in runs.values()) <= in_flight  # at-least-once only mid-step
    # The join started after every part had finished: the fan-in waited for all of them.
    by_job = {c.job: c for c in final.jobs}
    parts = [c for c in final.jobs if (c.job or "").startswith("part")]
    join = by_job["join"]
    assert join.started_at is not None
    assert all(p.finished_at is not None and p.finished_at <= join.started_at for p in parts)
    return runs


@pytest.fixture
def probe_env(
    broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, probe_chain: Any
) -> dict[str, str]:
    """A probe-chain client (this process) and workers on the test's broker (Redis, then
    RabbitMQ), with a 5 s step lease and a 10 s re-send of lost messages."""
    env = faults.worker_env(broker_env)
    faults.use(monkeypatch, env)
    return env


def test_a_worker_killed_mid_workflow_leaves_the_other_to_complete_every_job_once(
    probe_env: dict[str, str],
    store_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two workers share the fan-out, so fan-ins race (the lock on the workflow row, on
    each store); then one is SIGKILLed with its pool, mid-step, and the other finishes."""
    workspace = faults.workspace_of(probe_env)
    with (
        proc.worker(probe_env, tmp_path / "w1.log", concurrency=2, name="w1") as first,
        proc.worker(probe_env, tmp_path / "w2.log", concurrency=2, name="w2"),
    ):
        wf_id = start(fan(6, SLOW), workspace)
        # Mid-workflow: the root done, fan-out jobs inside a step on the doomed worker.
        held = wait_until(
            lambda: [r for r in faults.running_steps() if (r[2] or "").startswith("w1@")
                     and r[0] != view(wf_id).jobs[0].id],
            message="a fan-out job running on w1",
        )  # fmt: skip
        os.killpg(first.pid, signal.SIGKILL)  # the main process and its pool
        killed_at = time.monotonic()
        in_flight = len([r for r in faults.running_steps() if (r[2] or "").startswith("w1@")])
        assert in_flight >= len(held) >= 1, "the kill should leave w1's steps RUNNING"
        assert view(wf_id).jobs[-1].step_count == 0  # the join had not started
        wait_workflow(wf_id, timeout=180)
    recovered = time.monotonic() - killed_at
    runs = check_exactly_once(wf_id, workspace, in_flight=in_flight)
    twice = sum(n > 1 for n in runs.values())
    backend = store_url.split(":")[0].split("+")[0]
    faults.log_figure(
        capsys,
        f"workflow-killed-worker ({backend}): 8 jobs COMPLETED {recovered:.1f}s after w1 "
        f"was killed ({in_flight} steps in flight, {twice} computed twice)",
    )


# Redis only: the test restarts the broker, and the suite owns only its redis-server; the
# RabbitMQ server is shared (the suite has a vhost on it), so it cannot be restarted here.
@pytest.mark.redis
def test_a_broker_restarted_mid_workflow_loses_no_job(
    env: dict[str, str],
    own_redis: services.RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    probe_chain: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wenv = faults.worker_env(
        {**env, "TASKCHAIN_BROKER_URL": own_redis.url(), "TASKCHAIN_BROKER_TIMEOUT": "1"}
    )
    faults.use(monkeypatch, wenv)
    workspace = faults.workspace_of(wenv)
    with proc.worker(wenv, tmp_path / "w.log", concurrency=2):
        wf_id = start(fan(6, [{"sleep": 0.5}, {"sleep": 0.5}]), workspace)
        wait_until(lambda: parts_running(wf_id), message="a fan-out job running")
        own_redis.stop()  # empty when it comes back: every queued step and job start is gone
        down = {c.job: c.status for c in view(wf_id).jobs}
        # Down long enough for running steps to finish and fail to send what comes next.
        wait_until(
            lambda: any(st.status == Status.COMPLETED for c in view(wf_id).jobs
                        if (c.job or "").startswith("part") for st in steps_of(c)),
            message="a fan-out step finishing while the broker is down",
        )  # fmt: skip
        own_redis.start(own_redis.port)
        elapsed = wait_workflow(wf_id, timeout=240)
    assert down["join"] == Status.PENDING
    runs = check_exactly_once(wf_id, workspace, in_flight=0)
    faults.log_figure(
        capsys,
        f"workflow-broker-restart: {len(runs)} steps of 8 jobs each computed once, workflow "
        f"COMPLETED {elapsed:.1f}s after Redis came back empty",
    )


DOOMED = textwrap.dedent(
    """
    import sys, time
    from taskchain.engine import runner
    runner.run_step(sys.argv[1], 0, worker="doomed")  # claim, compute, record: no fan-in
    print("recorded", flush=True)
    time.sleep(600)
    """
)


def test_a_process_killed_between_a_jobs_end_and_its_fan_in_is_recovered_by_the_sweep(
    probe_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deterministic: a process records the root job's last step as a worker does, then is
    SIGKILLed before the fan-in that would start the jobs needing it. Its message is gone
    too (purged: as if acked). Only the recovery sweep's `sweep_stalled` can start them."""
    from kombu import Connection

    from taskchain.engine.queues import queue_name

    workspace = faults.workspace_of(probe_env)
    wf_id = start(fan(3, [{}, {}]), workspace)  # no worker yet: root's step waits in its queue
    root = view(wf_id).jobs[0]
    with Connection(probe_env["TASKCHAIN_BROKER_URL"]) as conn:
        purged = conn.default_channel.queue_purge(queue_name("celery"))
    assert purged == 1
    doomed = proc.spawn(
        [sys.executable, "-c", DOOMED, root.id], probe_env, stdout=subprocess.PIPE, text=True
    )
    assert doomed.stdout is not None and doomed.stdout.readline() == "recorded\n"
    doomed.kill()
    assert doomed.wait(timeout=10) == -signal.SIGKILL
    stalled = view(wf_id)
    assert stalled.workflow.status == Status.RUNNING
    assert [c.status for c in stalled.jobs] == [Status.COMPLETED] + [Status.PENDING] * 4
    assert all(c.step_count == 0 for c in stalled.jobs[1:])  # nothing started them
    with session() as s:
        assert wfstore.stalled(session=s) == [wf_id]
    log = tmp_path / "w.log"
    with proc.worker(probe_env, log, concurrency=2):
        elapsed = wait_workflow(wf_id, timeout=120)
    check_exactly_once(wf_id, workspace, in_flight=0)
    assert "advanced workflows whose fan-in was lost" in log.read_text()
    faults.log_figure(
        capsys,
        f"workflow-lost-fan-in: the sweep started the 3 waiting jobs and the workflow "
        f"COMPLETED {elapsed:.1f}s after a worker started",
    )


def test_the_sweep_leaves_an_embedded_workflow_to_its_runner_or_to_retry(
    workspace: Path,
) -> None:
    """A lost fan-in of a workflow that an embedded process runs is that process's to redo
    (or, once it died, `retry`'s): a worker's sweep sending its jobs to a broker would take
    them from it. The store's states are set by hand: the window is microseconds wide."""
    from datetime import timedelta

    from sqlalchemy import delete, update
    from sqlmodel import col

    from taskchain.store.models import StepRecord, utcnow
    from taskchain.store.workflow_model import WorkflowRecord

    document = {"name": "two", "jobs": {
        "a": {"type": "math_chain", "config": {"numbers": [1, 2]}},
        "b": {"type": "math_chain", "needs": ["a"], "config": {"numbers": [3, 4]}},
    }}  # fmt: skip
    wf_id = start(document, workspace)  # embedded: this process runs it
    wait_workflow(wf_id, timeout=30)
    b = view(wf_id).jobs[1]

    def lose_the_fan_in(**runner: Any) -> tuple[list[str], bool]:
        """b back to not started, the workflow RUNNING, the jobs held by `runner`:
        (the ids the sweep would advance, whether `status` calls it orphaned)."""
        with session(write=True) as s:
            s.execute(delete(StepRecord).where(col(StepRecord.chain_id) == b.id))
            s.execute(
                update(ChainRecord).where(col(ChainRecord.id) == b.id)
                .values(status=Status.PENDING, step_count=0, finished_at=None)
            )  # fmt: skip
            # Every job's runner lease: a finished job's lapses a lease after its last renewal.
            s.execute(
                update(ChainRecord).where(col(ChainRecord.workflow_id) == wf_id).values(**runner)
            )
            s.execute(
                update(WorkflowRecord).where(col(WorkflowRecord.id) == wf_id)
                .values(status=Status.RUNNING, finished_at=None)
            )  # fmt: skip
        with session() as s:
            return wfstore.stalled(session=s), wfstore.is_orphaned(view(wf_id))

    soon, past = utcnow() + timedelta(seconds=60), utcnow() - timedelta(seconds=1)
    assert lose_the_fan_in(runner="h:1:x", runner_lease_expires_at=soon) == ([], False)
    assert lose_the_fan_in(runner="h:1:x", runner_lease_expires_at=past) == ([], True)
    assert lose_the_fan_in(runner=None, runner_lease_expires_at=None) == ([wf_id], False)


def test_a_job_the_workers_just_finished_keeps_its_workflow_from_looking_orphaned(
    workspace: Path,
) -> None:
    """A retry handed an orphaned workflow's jobs to the workers; the others stay held by the
    dead runner's lapsed lease. Between a job's last step and its fan-in (two transactions)
    every job can be finished while the workflow is still RUNNING: that is not orphaned
    (`retry --wait` and `watch` exited 1 in that window), until a step lease has passed with
    the fan-in still not done. The states are set by hand: the window is microseconds wide."""
    from datetime import timedelta

    from sqlalchemy import update
    from sqlmodel import col

    from taskchain.settings import get_settings
    from taskchain.store.models import utcnow
    from taskchain.store.workflow_model import WorkflowRecord

    document = {"name": "two", "jobs": {
        "a": {"type": "math_chain", "config": {"numbers": [1, 2]}},
        "b": {"type": "math_chain", "needs": ["a"], "config": {"numbers": [3, 4]}},
    }}  # fmt: skip
    wf_id = start(document, workspace)
    wait_workflow(wf_id, timeout=30)
    a, b = view(wf_id).jobs
    lease = timedelta(seconds=get_settings().step_lease)

    def b_finished_by_a_worker(ago: timedelta) -> tuple[bool, list[str]]:
        """`a` held by a dead runner, `b` finished by the workers `ago`, the workflow still
        RUNNING: (whether it is orphaned, the workflows the sweep would advance)."""
        now = utcnow()
        with session(write=True) as s:
            s.execute(
                update(ChainRecord).where(col(ChainRecord.id) == a.id)
                .values(runner="h:1:x", runner_lease_expires_at=now - 2 * lease)
            )  # fmt: skip
            s.execute(
                update(ChainRecord).where(col(ChainRecord.id) == b.id)
                .values(runner=None, runner_lease_expires_at=None, finished_at=now - ago)
            )  # fmt: skip
            s.execute(
                update(WorkflowRecord).where(col(WorkflowRecord.id) == wf_id)
                .values(status=Status.RUNNING, finished_at=None)
            )  # fmt: skip
        with session() as s:
            return wfstore.is_orphaned(view(wf_id)), wfstore.stalled(session=s)

    assert b_finished_by_a_worker(timedelta(seconds=0)) == (False, [wf_id])
    assert b_finished_by_a_worker(lease / 2) == (False, [wf_id])
    # A lease on, nobody settled it (the workers are gone too): `retry` must take it over.
    assert b_finished_by_a_worker(lease + timedelta(seconds=1)) == (True, [wf_id])
    assert engine.retry(wf_id) == []
    assert view(wf_id).workflow.status == Status.COMPLETED
