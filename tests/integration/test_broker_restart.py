"""A Redis broker restarted (empty: it keeps nothing on disk) under load: every chain ends."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskchain.errors import BrokerUnavailable
from taskchain.store import Status, queries, session
from tests.integration import faults
from tests.support import proc, services

PORT = 6391


def start_redis(tmp_path: Path) -> None:
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(PORT),
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
         "--logfile", str(tmp_path / "redis.log"), "--pidfile", str(tmp_path / "redis.pid")],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not services.reachable("127.0.0.1", PORT):
        assert time.monotonic() < deadline, "private redis did not start"
        time.sleep(0.05)


def stop_redis() -> None:
    subprocess.run(["redis-cli", "-p", str(PORT), "shutdown", "nosave"], capture_output=True)
    deadline = time.monotonic() + 10
    while services.reachable("127.0.0.1", PORT) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    services.require("Redis", services.REDIS)  # the same binaries as the machine's Redis
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed")
    start_redis(tmp_path)
    yield f"redis://127.0.0.1:{PORT}/0"
    stop_redis()


def test_redis_restart_while_100_chains_run_and_more_are_submitted(
    env: dict[str, str],
    private_redis: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wenv = faults.worker_env(
        {**env, "TASKCHAIN_BROKER_URL": private_redis, "TASKCHAIN_BROKER_TIMEOUT": "1"}
    )
    faults.use(monkeypatch, wenv)
    with proc.worker(wenv, tmp_path / "w.log", concurrency=2):
        ids = [faults.probe([{"sleep": 0.05}, {"sleep": 0.05}]) for _ in range(100)]
        late: list[str] = []
        refused: list[str] = []

        def keep_submitting() -> None:
            for _ in range(30):
                try:
                    late.append(faults.probe([{}, {}]))
                except BrokerUnavailable as exc:
                    refused.append(str(exc))
                time.sleep(0.1)

        submitter = threading.Thread(target=keep_submitting)
        submitter.start()
        time.sleep(0.5)
        stop_redis()
        time.sleep(1.0)
        start_redis(tmp_path)
        submitter.join()
        elapsed = faults.wait_finished(ids + late, timeout=180)
    with session() as s:
        recorded = queries.stats(session=s).total
        chains = [queries.get_chain(session=s, chain_id=i).chain for i in ids + late]
    completed = sum(c.status == Status.COMPLETED for c in chains)
    failed = [c for c in chains if c.status == Status.FAILED]
    faults.log_figure(
        capsys,
        f"redis-restart: {len(chains)} chains recorded, {completed} COMPLETED, {len(failed)} FAILED, "
        f"0 stuck, {len(refused)} submits refused with exit 4 (nothing recorded), all ended in {elapsed:.1f}s",
    )
    assert recorded == len(ids) + len(late)  # a refused submit left no record
    assert all(c.status in (Status.COMPLETED, Status.FAILED) for c in chains)
    assert all(c.error for c in failed)
    assert all("unreachable" in r for r in refused)
