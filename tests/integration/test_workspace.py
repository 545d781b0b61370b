"""Distributed: a worker whose workspace differs from the submitter's fails the step with one
line naming both; a worker with the same workspace runs the retried chain.

Runs against a redis-server of its own, on a free port, which it shuts down at the end.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import proc, services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
         "--logfile", str(tmp_path / "redis.log"), "--pidfile", str(tmp_path / "redis.pid")],
        check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not services.reachable("127.0.0.1", port):
        assert time.monotonic() < deadline, "own redis-server did not start"
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)


def test_a_worker_in_another_workspace_fails_the_step_and_names_both(
    env: dict[str, str], own_redis: str, workspace: Path, tmp_path: Path
) -> None:
    (workspace / "sales.csv").write_text("region,amount\nnorth,3\nsouth,4\n")
    client = {**env, "TASKCHAIN_BROKER_URL": own_redis}
    elsewhere = tmp_path / "worker-checkout"
    elsewhere.mkdir()
    host = socket.gethostname()
    config = '{"data_input": "sales.csv", "processing_steps": ["clean", "analyze"]}'
    submitted = proc.run(["submit", "data_chain", "--config", config, "-q"], client)
    assert submitted.returncode == 0, submitted.stderr
    chain_id = submitted.stdout.strip()

    wrong = {**client, "TASKCHAIN_WORKSPACE": str(elsewhere)}
    with proc.worker(wrong, tmp_path / "w1.log", name="w1", concurrency=1):
        done = proc.run(["result", chain_id, "--wait", "--timeout", "60s"], client)
    assert (done.returncode, done.stdout) == (1, "")
    reason = (
        f"workspace mismatch: worker w1@{host} uses {elsewhere.resolve()}, the chain was "
        f"submitted against {workspace.resolve()} on host {host}; set TASKCHAIN_WORKSPACE the "
        "same on both"
    )
    assert done.stderr == f"chain {chain_id} FAILED: step 1 (clean) failed: {reason}\n"
    doc = json.loads(proc.run(["status", chain_id, "--json"], client).stdout)
    assert (doc["workspace"], doc["submit_host"]) == (str(workspace.resolve()), host)
    assert [(s["status"], s["error"]) for s in doc["steps"]] == [
        ("FAILED", reason), ("SKIPPED", None),
    ]  # fmt: skip
    assert not (elsewhere / ".taskchain").exists()  # nothing ran in the wrong folder

    with proc.worker(client, tmp_path / "w2.log", name="w2", concurrency=1):
        retried = proc.run(["retry", chain_id, "--wait", "-q"], client, timeout=90)
    assert retried.returncode == 0, retried.stderr
    final = json.loads(proc.run(["status", chain_id, "--json"], client).stdout)
    assert final["status"] == "COMPLETED"
    assert final["result"]["rows"] == 2
