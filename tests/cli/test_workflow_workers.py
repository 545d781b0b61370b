"""Workflows on real workers: the 20-job fan-out on two `taskchain worker -c 2` over the
private Redis, its jobs overlapping in time (from the store's timestamps); and `cancel` on a
workflow whose jobs wait in a queue."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support import proc
from tests.support.waiting import wait_until

FANOUT = Path(__file__).parents[2] / "examples" / "workflows" / "fanout.yaml"

pytestmark = pytest.mark.redis


def status(ref: str, env: dict[str, str]) -> dict[str, Any]:
    done = proc.run(["status", ref, "--json"], env)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def step_workers(env: dict[str, str], chain_ids: list[str]) -> set[str]:
    """The workers (node names) that ran these chains' steps, from the store."""
    db = sqlite3.connect(env["TASKCHAIN_DATABASE_URL"].removeprefix("sqlite:///"))
    marks = ",".join("?" * len(chain_ids))
    rows = db.execute(f"SELECT worker FROM step WHERE chain_id IN ({marks})", chain_ids)
    found = {str(w).split("@")[0] for (w,) in rows if w}
    db.close()
    return found


def most_at_once(jobs: list[dict[str, Any]]) -> int:
    """The most jobs running at one moment, from their recorded start and end."""
    events = []
    for job in jobs:
        events.append((datetime.fromisoformat(job["started_at"]), 1))
        events.append((datetime.fromisoformat(job["finished_at"]), -1))
    running = peak = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start
        running += change
        peak = max(peak, running)
    return peak


def test_the_fanout_runs_on_two_workers_with_jobs_overlapping(
    redis_env: dict[str, str], tmp_path: Path
) -> None:
    with (
        proc.worker(redis_env, tmp_path / "w1.log", concurrency=2, name="w1"),
        proc.worker(redis_env, tmp_path / "w2.log", concurrency=2, name="w2"),
    ):
        done = proc.run(["run", str(FANOUT), "--wait", "-q"], redis_env, timeout=180)
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        doc = status(done.stdout.strip(), redis_env)
    assert doc["status"] == "COMPLETED"
    squares = [j for j in doc["jobs"] if j["name"] != "total"]
    total = next(j for j in doc["jobs"] if j["name"] == "total")
    assert status(total["chain_id"], redis_env)["result"] == 2870
    assert total["started_at"] >= max(j["finished_at"] for j in squares)
    workers = step_workers(redis_env, [j["chain_id"] for j in squares])
    peak = most_at_once(squares)
    print(f"fan-out: 20 jobs, at most {peak} at once, workers {sorted(workers)}")
    assert peak >= 2
    assert workers == {"w1", "w2"}


def test_cancel_stops_running_jobs_and_skips_the_rest(redis_env: dict[str, str]) -> None:
    # No worker: the first jobs wait in their queue, started but not claimed.
    done = proc.run(["run", str(FANOUT), "-q"], redis_env)
    assert done.returncode == 0, done.stderr
    wf_id = done.stdout.strip()
    assert status(wf_id, redis_env)["status"] == "RUNNING"
    cancelled = proc.run(["cancel", wf_id], redis_env)
    assert (cancelled.returncode, cancelled.stderr) == (0, f"cancelled workflow {wf_id}\n")
    doc = wait_until(lambda: (d := status(wf_id, redis_env))["status"] == "CANCELLED" and d)
    got = {j["name"]: (j["status"], j["error"]) for j in doc["jobs"]}
    assert got.pop("total") == ("SKIPPED", "the workflow was cancelled")
    assert set(got.values()) == {("CANCELLED", "cancelled with its workflow")}
    watched = proc.run(["watch", wf_id], redis_env)
    assert watched.returncode == 1
