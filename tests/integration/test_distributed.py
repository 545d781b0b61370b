"""Distributed mode end to end: the real CLI, a real worker, Redis, PostgreSQL, RabbitMQ."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.support import proc


def submit(env: dict[str, str], *args: str) -> str:
    done = proc.run(["submit", *args, "-q"], env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def status(env: dict[str, str], chain_id: str) -> dict:
    done = proc.run(["status", chain_id, "--json"], env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_submit_returns_before_the_chain_runs_without_a_worker(redis_env: dict[str, str]) -> None:
    chain_id = submit(redis_env, "math_chain", "--numbers", "1", "2", "3")
    doc = status(redis_env, chain_id)
    assert doc["status"] == "PENDING"
    assert [s["status"] for s in doc["steps"]] == ["PENDING", "PENDING"]
    waited = proc.run(["result", chain_id, "--wait", "--timeout", "1s"], redis_env)
    assert waited.returncode == 124
    assert "did not finish within 1s" in waited.stderr


def test_chains_run_on_a_real_worker(redis_worker: dict[str, str]) -> None:
    numbers = [str(n) for n in range(1, 12)]
    chain_id = submit(redis_worker, "math_chain", "--numbers", *numbers)
    waited = proc.run(["result", chain_id, "--wait", "--timeout", "60s", "--json"], redis_worker)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["result"] == 66
    doc = status(redis_worker, chain_id)
    assert [s["result"] for s in doc["steps"]] == [sum(range(1, k + 1)) for k in range(2, 12)]
    assert all(s["attempts"] == 1 and s["queue"] == "math" for s in doc["steps"])
    assert doc["started_at"] <= doc["finished_at"]


def test_failing_chain_on_a_real_worker(redis_worker: dict[str, str]) -> None:
    done = proc.run(
        [
            "submit",
            "math_chain",
            "--numbers",
            "8",
            "2",
            "0",
            "5",
            "--operation",
            "divide",
            "--wait",
        ],
        redis_worker,
    )
    assert done.returncode == 1, done.stderr
    chain_id = done.stdout.strip()
    doc = status(redis_worker, chain_id)
    assert doc["status"] == "FAILED"
    assert [s["status"] for s in doc["steps"]] == ["COMPLETED", "FAILED", "SKIPPED"]
    assert doc["steps"][1]["error"] == "division by zero (4 // 0)"
    assert doc["error"] == "step 2 (divide 0) failed: division by zero (4 // 0)"
    watched = proc.run(["watch", chain_id], redis_worker)
    assert watched.returncode == 1


def test_many_chains_in_parallel(redis_worker: dict[str, str]) -> None:
    ids = [submit(redis_worker, "math_chain", "--numbers", str(k), "1", "1") for k in range(10)]
    for k, chain_id in enumerate(ids):
        waited = proc.run(["result", chain_id, "--wait", "--timeout", "60s"], redis_worker)
        assert (waited.returncode, waited.stdout) == (0, f"{k + 2}\n")
    doc = json.loads(proc.run(["stats", "--json"], redis_worker).stdout)
    assert doc["by_status"]["COMPLETED"] == 10


def test_info_sees_the_worker(redis_worker: dict[str, str]) -> None:
    done = proc.run(["info", "--json"], redis_worker)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["mode"] == "distributed"
    assert doc["broker"] == "ok"
    assert doc["broker_url"] == redis_worker["TASKCHAIN_BROKER_URL"]
    (worker,) = doc["workers"]
    assert worker.startswith("w1@")
    text = proc.run(["info"], redis_worker)
    assert (text.returncode, text.stderr) == (0, "")
    lines = {line.split()[0]: line.split(maxsplit=1)[1:] for line in text.stdout.splitlines()}
    assert lines["mode"] == ["distributed"]
    assert lines["broker_url"] == [redis_worker["TASKCHAIN_BROKER_URL"]]
    assert lines["broker"] == ["ok"]
    assert lines["workers"] == [worker]
    assert lines["store"] == ["ok (0 chains)"]


def test_broker_down_fails_fast(env: dict[str, str]) -> None:
    limit = proc.within(3, env)
    start = time.monotonic()
    done = proc.run(
        ["submit", "math_chain", "--numbers", "1", "2"],
        {**env, "TASKCHAIN_BROKER_URL": "redis://:secret@127.0.0.1:1/0"},
    )
    assert done.returncode == 4
    assert time.monotonic() - start < limit
    assert done.stderr.startswith(
        "taskchain: error: broker redis://:***@127.0.0.1:1/0 is unreachable"
    )
    assert json.loads(proc.run(["list", "--json"], env).stdout) == []


@pytest.mark.postgres
def test_postgres_store_with_two_workers(
    redis_env: dict[str, str], postgres_url: str, tmp_path: Path
) -> None:
    env = {**redis_env, "TASKCHAIN_DATABASE_URL": postgres_url}
    with (
        proc.worker(env, tmp_path / "w1.log", name="w1"),
        proc.worker(env, tmp_path / "w2.log", name="w2"),
    ):
        ids = [
            submit(env, "math_chain", "--numbers", "2", str(k), "--operation", "power")
            for k in range(8)
        ]
        results = [proc.run(["result", i, "--wait", "--timeout", "60s"], env).stdout for i in ids]
    assert results == [f"{2**k}\n" for k in range(8)]
    doc = json.loads(proc.run(["stats", "--json"], env).stdout)
    assert doc["by_status"]["COMPLETED"] == 8
    assert doc["durations"]["p95"] is not None


@pytest.mark.rabbitmq
def test_rabbitmq_broker(env: dict[str, str], rabbitmq_url: str, tmp_path: Path) -> None:
    env = {**env, "TASKCHAIN_BROKER_URL": rabbitmq_url}
    with proc.worker(env, tmp_path / "w.log"):
        done = proc.run(
            [
                "submit",
                "math_chain",
                "--numbers",
                "3",
                "4",
                "5",
                "--operation",
                "*",
                "--wait",
                "--timeout",
                "60s",
            ],
            env,
        )
    assert done.returncode == 0, done.stderr
    assert status(env, done.stdout.strip())["result"] == 60
