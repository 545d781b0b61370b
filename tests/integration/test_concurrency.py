"""Concurrent submitters and several worker processes on one store: nothing lost or locked."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from taskchain.store import Status, queries, session
from tests.integration import faults
from tests.support import proc

# 800 chains through real workers: minutes on a busy machine, more than the default limit.
pytestmark = [pytest.mark.redis, pytest.mark.timeout(900)]

SUBMITTERS = 16
PER_SUBMITTER = 50


def run_submitters(env: dict[str, str]) -> tuple[list[str], list[str]]:
    procs = [
        proc.spawn(
            [sys.executable, "-m", "tests.support.submitter", str(PER_SUBMITTER)],
            env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(SUBMITTERS)
    ]
    ids: list[str] = []
    errors: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        doc = json.loads(out.strip().splitlines()[-1])
        ids += doc["ids"]
        errors += doc["errors"]
        errors += [line for line in err.splitlines() if "locked" in line]
    return ids, errors


def check_all(
    ids: list[str], logs: list[Path], label: str, capsys: pytest.CaptureFixture[str], elapsed: float
) -> None:
    with session() as s:
        recorded = queries.stats(session=s).total
        results = {i: queries.get_chain(session=s, chain_id=i).chain for i in ids}
    locked = sum(log.read_text().count("database is locked") for log in logs)
    completed = sum(c.status == Status.COMPLETED for c in results.values())
    total = SUBMITTERS * PER_SUBMITTER
    faults.log_figure(
        capsys,
        f"{label}: {recorded}/{total} recorded, {completed} COMPLETED, "
        f"{locked} 'database is locked', all finished {elapsed:.1f}s after the submitters",
    )
    assert recorded == total
    assert completed == total
    assert locked == 0
    assert elapsed < 240
    assert sorted(c.result for c in results.values()) == sorted(
        k + 2 for k in range(PER_SUBMITTER) for _ in range(SUBMITTERS)
    )


def test_16_submitters_on_sqlite(
    redis_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    faults.use(monkeypatch, redis_env)
    log = tmp_path / "w.log"
    with proc.worker(redis_env, log, concurrency=4):
        ids, errors = run_submitters(redis_env)
        assert errors == []
        elapsed = faults.wait_finished(ids, timeout=240)
    check_all(ids, [log], "sqlite-16x50", capsys, elapsed)


@pytest.mark.postgres
def test_16_submitters_on_postgres_two_workers(
    redis_env: dict[str, str],
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {**redis_env, "TASKCHAIN_DATABASE_URL": postgres_url}
    faults.use(monkeypatch, env)
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    with ExitStack() as stack:
        for n, log in enumerate(logs):
            stack.enter_context(proc.worker(env, log, concurrency=2, name=f"w{n}"))
        ids, errors = run_submitters(env)
        assert errors == []
        elapsed = faults.wait_finished(ids, timeout=240)
    check_all(ids, logs, "postgres-16x50-2-workers", capsys, elapsed)
