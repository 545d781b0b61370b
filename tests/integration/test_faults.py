"""It loses nothing: killed pool children, killed workers, duplicate and poisoned messages,
misbehaving steps. Each test prints the figure it proves ([figure] lines).

The broker's part (redelivery after a kill, duplicates, refusing a pickle) runs on Redis and
on RabbitMQ (`broker_env`), which redeliver differently: Redis keeps an unacked message until
its visibility timeout, long after taskchain's own recovery sweep has sent the step again;
RabbitMQ requeues it the moment the dead worker's connection closes. Either way the store's
leases must leave exactly one record of each step."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from taskchain.store import Status, queries, session
from tests.integration import faults
from tests.support import proc, services
from tests.support.probe import executions
from tests.support.waiting import wait_until


@pytest.fixture
def probe_env(broker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A probe-chain client and workers on the test's broker (Redis, then RabbitMQ)."""
    env = faults.worker_env(broker_env)
    faults.use(monkeypatch, env)
    return env


def steps_of(chain_id: str) -> list[queries.StepRecord]:
    with session() as s:
        return queries.get_chain(session=s, chain_id=chain_id).steps


def held_by(pid: int) -> list[tuple[str, int, str | None]]:
    """The RUNNING steps claimed by pool child `pid` (a claim's token is worker:pid:nonce)."""
    return [r for r in faults.running_steps() if (r[2] or "").split(":")[-2:-1] == [str(pid)]]


def test_pool_child_killed_mid_step(
    probe_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with proc.worker(probe_env, tmp_path / "w.log", concurrency=2) as worker:
        ids = [faults.probe([{"sleep": 0.6}, {"sleep": 0.6}]) for _ in range(20)]
        kills = mid_step = 0

        def both_busy() -> list[int] | str:
            """The pool's two children, when each holds a step; "done" when no chain is left."""
            if all(s.finished for s in faults.statuses(ids).values()):
                return "done"
            children = faults.pool_children(worker.pid)
            return children if len(children) == 2 and all(map(held_by, children)) else []

        # Kill until three kills have landed mid-step: on a busy machine a step may end
        # between seeing it held and the kill (that kill is not counted as mid-step).
        for _ in range(10):
            busy = wait_until(both_busy, timeout=30, message="both pool children running a step")
            if isinstance(busy, str) or mid_step >= 3:
                break
            victim = busy[0]
            faults.kill(victim)
            kills += 1
            # Its claim still RUNNING after the kill: it died mid-step (not just after it).
            mid_step += bool(held_by(victim))
            wait_until(  # the pool replaces the child it lost
                lambda victim=victim: (
                    victim not in (now := faults.pool_children(worker.pid)) and len(now) == 2
                ),
                message="the pool replacing its killed child",
            )
        elapsed = faults.wait_finished(ids, timeout=120)
    final = faults.statuses(ids)
    completed = sum(s == Status.COMPLETED for s in final.values())
    attempts = [st.attempts for i in ids for st in steps_of(i)]
    retried = sum(a > 1 for a in attempts)
    faults.log_figure(
        capsys,
        f"killed-pool-child: {completed}/20 chains completed after {kills} kills "
        f"({mid_step} mid-step), {retried} steps retried, {elapsed:.1f}s",
    )
    assert completed == 20
    assert mid_step >= 3
    assert all(
        st.status == Status.COMPLETED and st.result == st.index + 1
        for i in ids
        for st in steps_of(i)
    )
    # Each kill mid-step cost exactly one more attempt of the step it held (the redelivered
    # message, or the recovery sweep's, claims it again once the dead claim's lease ends):
    # no kill went unnoticed, and no step was claimed twice for one kill.
    assert sum(attempts) - len(attempts) == mid_step
    assert 1 <= retried <= mid_step
    assert elapsed < 120


def test_whole_worker_killed_then_replaced(
    probe_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with proc.worker(probe_env, tmp_path / "w1.log", concurrency=2) as first:
        ids = [faults.probe([{"sleep": 1.0}, {"sleep": 0.2}]) for _ in range(10)]
        wait_until(faults.running_steps, message="a step running")
        os.killpg(first.pid, signal.SIGKILL)  # the main process and its pool, mid-step
        killed_at = time.monotonic()
    in_flight = len(faults.running_steps())
    assert in_flight >= 1, "the kill should leave steps RUNNING"
    with proc.worker(probe_env, tmp_path / "w2.log", concurrency=2, name="w2"):
        elapsed = faults.wait_finished(ids, timeout=120)
    recovered = time.monotonic() - killed_at
    completed = sum(s == Status.COMPLETED for s in faults.statuses(ids).values())
    runs = Counter(executions(faults.workspace_of(probe_env)))
    twice = sum(n > 1 for n in runs.values())
    faults.log_figure(
        capsys,
        f"killed-worker: {completed}/10 chains completed {recovered:.1f}s after the kill "
        f"(new worker took {elapsed:.1f}s), {twice} steps computed twice",
    )
    assert completed == 10
    assert recovered < 120 and elapsed <= recovered
    assert sorted(runs) == sorted((i, k) for i in ids for k in (0, 1))  # every step ran
    # Only a step caught mid-computation by the kill can have run twice (at-least-once).
    assert twice <= in_flight
    assert max(runs.values()) <= 2
    steps = [st for i in ids for st in steps_of(i)]
    assert all(st.status == Status.COMPLETED and st.result == st.index + 1 for st in steps)
    # Exactly one record per step: each step the kill left RUNNING was claimed once more (by
    # the redelivered message on RabbitMQ, by the recovery sweep's on Redis), no other was.
    assert sum(st.attempts for st in steps) - len(steps) == in_flight


def test_duplicate_message_for_a_long_step_does_not_run_it_twice_at_once(
    probe_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskchain.engine.dispatch import send_step

    with proc.worker(probe_env, tmp_path / "w.log", concurrency=2):
        chain_id = faults.probe([{"sleep": 12.0}])  # longer than two leases of 5 s
        wait_until(lambda: steps_of(chain_id)[0].status == Status.RUNNING, message="step running")
        send_step(chain_id, 0)  # what a broker redelivering the message would do
        faults.wait_finished([chain_id], timeout=60)
        # The duplicate waits (a retry with a countdown) and runs once more: then nothing is
        # queued or in flight, and whatever it would have done is done.
        wait_until(
            lambda: services.broker_idle(probe_env["TASKCHAIN_BROKER_URL"]),
            message="the duplicate handled",
        )
    (step,) = steps_of(chain_id)
    runs = executions(faults.workspace_of(probe_env))
    faults.log_figure(
        capsys,
        f"long-step: 12s step with lease 5s and a duplicate message: ran {len(runs)}x, attempts {step.attempts}",
    )
    assert step.status == Status.COMPLETED
    assert runs == [(chain_id, 0)]
    assert step.attempts == 1


# The step misbehaves, not the broker: the worker's time limit and error handling are the same
# on every transport, so this runs on Redis only (four more RabbitMQ runs would prove nothing).
@pytest.mark.redis
@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ({"crash": True}, "unexpected RuntimeError: probe crashed on purpose"),
        ({"non_json": True}, "step returned a value that is not JSON"),
        ({"fail": "the input was bad"}, "the input was bad"),
        ({"sleep": 10.0}, "step exceeded the time limit of 2s"),
    ],
)
def test_misbehaving_steps_fail_with_a_reason_and_the_worker_lives(
    redis_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    step: dict,
    reason: str,
) -> None:
    env = faults.worker_env(redis_env, TASKCHAIN_TASK_TIME_LIMIT="2")
    faults.use(monkeypatch, env)
    with proc.worker(env, tmp_path / "w.log", concurrency=1) as worker:
        bad = faults.probe([{}, step, {}])
        faults.wait_finished([bad], timeout=30)
        after = faults.probe([{}, {}])
        faults.wait_finished([after], timeout=30)
        assert worker.poll() is None
    assert [s.status for s in steps_of(bad)] == [Status.COMPLETED, Status.FAILED, Status.SKIPPED]
    assert reason in (steps_of(bad)[1].error or "")
    assert faults.statuses([after]) == {after: Status.COMPLETED}


def test_pickle_message_is_refused_and_the_worker_lives(
    probe_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kombu import Connection, Exchange, Queue

    log = tmp_path / "w.log"
    with proc.worker(probe_env, log, concurrency=1) as worker:
        with Connection(probe_env["TASKCHAIN_BROKER_URL"]) as conn:
            producer = conn.Producer(serializer="pickle")
            producer.publish(
                {"args": ["x", 0], "kwargs": {}},
                exchange=Exchange("taskchain.math", type="direct"),
                routing_key="taskchain.math",
                declare=[
                    Queue(
                        "taskchain.math",
                        Exchange("taskchain.math", type="direct"),
                        routing_key="taskchain.math",
                    )
                ],
                headers={"task": "taskchain.run_step", "id": "pickled-1", "lang": "py"},
            )
        refused = wait_until(
            lambda: (
                "ContentDisallowed" in (text := log.read_text()) or "disallowed" in text.lower()
            ),
            message="the worker refusing the pickle message",
        )
        chain_id = faults.probe([{}, {}])
        faults.wait_finished([chain_id], timeout=30)
        alive = worker.poll() is None
    faults.log_figure(
        capsys,
        f"pickle: message refused={refused}, worker alive={alive}, next chain {faults.statuses([chain_id])[chain_id].value}",
    )
    assert refused
    assert alive
    assert faults.statuses([chain_id]) == {chain_id: Status.COMPLETED}
