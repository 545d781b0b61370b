"""A Redis broker restarted (empty: it keeps nothing on disk) under load: every chain ends
COMPLETED with its result, and a submit refused while it was down recorded nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from taskchain.errors import BrokerUnavailable
from taskchain.store import Status, queries, session
from tests.integration import faults
from tests.support import proc, services
from tests.support.waiting import wait_until

# Redis only: the test restarts the broker, and the suite owns only its redis-server; the
# RabbitMQ server is shared (the suite has a vhost on it), so it cannot be restarted here.
pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]


class Submitter(threading.Thread):
    """Submits two-step probe chains, one every 0.1 s, until stopped; counts refusals."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.accepted: list[str] = []
        self.refused: list[BrokerUnavailable] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.accepted.append(faults.probe([{}, {}]))
            except BrokerUnavailable as exc:
                self.refused.append(exc)
            self.halt.wait(0.1)


def test_redis_restart_while_100_chains_run_and_more_are_submitted(
    env: dict[str, str],
    own_redis: services.RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wenv = faults.worker_env(
        {**env, "TASKCHAIN_BROKER_URL": own_redis.url(), "TASKCHAIN_BROKER_TIMEOUT": "1"}
    )
    faults.use(monkeypatch, wenv)
    with proc.worker(wenv, tmp_path / "w.log", concurrency=2):
        ids = [faults.probe([{"sleep": 0.05}, {"sleep": 0.05}]) for _ in range(100)]
        submitter = Submitter()
        submitter.start()
        try:
            # Down in the middle of the work: some chains done, most still queued.
            wait_until(
                lambda: (
                    len(submitter.accepted) >= 3
                    and any(s == Status.COMPLETED for s in faults.statuses(ids).values())
                ),
                message="a first chain completing",
            )
            own_redis.stop()
            down_at = len(submitter.accepted)
            wait_until(lambda: submitter.refused, message="a submit refused while Redis is down")
            own_redis.start(own_redis.port)  # empty: every queued message is gone
            wait_until(
                lambda: len(submitter.accepted) >= down_at + 3,
                message="submits accepted again after the restart",
            )
        finally:
            submitter.halt.set()
            submitter.join(timeout=30)
        late, refused = submitter.accepted, submitter.refused
        elapsed = faults.wait_finished(ids + late, timeout=240)
    with session() as s:
        recorded = queries.stats(session=s).total
        chains = [queries.get_chain(session=s, chain_id=i) for i in ids + late]
    completed = sum(c.chain.status == Status.COMPLETED for c in chains)
    failed = sum(c.chain.status == Status.FAILED for c in chains)
    stuck = sum(not c.chain.status.finished for c in chains)
    faults.log_figure(
        capsys,
        f"redis-restart: {len(chains)} chains recorded, {completed} COMPLETED, {failed} FAILED, "
        f"{stuck} stuck, {len(refused)} submits refused with exit 4 (nothing recorded), "
        f"all ended in {elapsed:.1f}s",
    )
    assert recorded == len(chains) == len(ids) + len(late)  # a refused submit left no record
    assert (completed, failed, stuck) == (len(chains), 0, 0), [
        (c.chain.id, c.chain.status, c.chain.error)
        for c in chains
        if c.chain.status.finished and c.chain.status != Status.COMPLETED
    ][:5]
    assert all(c.chain.result == 2 for c in chains)  # a probe chain of n steps ends with n
    assert all([st.result for st in c.steps] == [1, 2] for c in chains)
    assert len(refused) >= 1
    assert all(r.exit_code == 4 and "unreachable" in str(r) for r in refused)
    assert elapsed < 240
