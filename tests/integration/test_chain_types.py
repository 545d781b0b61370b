"""data_chain and io_chain through real workers on their own queues (distributed mode)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from taskchain.engine.queues import queue_name
from tests.support import proc, services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def status(env: dict[str, str], chain_id: str) -> dict:
    return json.loads(proc.run(["status", chain_id, "--json"], env).stdout)


def test_steps_are_routed_to_their_type_queue(
    broker_env: dict[str, str], workspace: Path, tmp_path: Path
) -> None:
    """On Redis and on RabbitMQ: each broker routes by the queue's own exchange and key."""
    shutil.copy(EXAMPLES / "sales.csv", workspace / "sales.csv")
    (workspace / "a.txt").write_text("alpha")
    with proc.worker(broker_env, tmp_path / "math.log", queues="math", name="math"):
        data = proc.run(
            ["submit", "data_chain", "--input", "sales.csv", "--steps", "clean,analyze", "-q"],
            broker_env,
        )
        io = proc.run(
            ["submit", "io_chain", "--targets", "a.txt", "--ops", "checksum", "-q"], broker_env
        )
        data_id, io_id = data.stdout.strip(), io.stdout.strip()
        # A math chain submitted after them completes: the worker has been taking messages
        # from its queue all along, and left the data and io steps alone, queued.
        math = proc.run(
            ["submit", "math_chain", "--numbers", "1", "2", "--wait", "--timeout", "60s", "-q"],
            broker_env,
        )
        assert (math.returncode, math.stderr) == (0, ""), math.stderr
        assert status(broker_env, math.stdout.strip())["result"] == 3
        assert status(broker_env, data_id)["status"] == "PENDING"
        assert status(broker_env, io_id)["status"] == "PENDING"
        broker = broker_env["TASKCHAIN_BROKER_URL"]
        # Queued on the broker under taskchain's own names (the prefix + the family).
        depth = [services.queue_length(broker, queue_name(f)) for f in ("data", "io", "math")]
        assert depth == [1, 1, 0]
    with proc.worker(broker_env, tmp_path / "data-io.log", queues="data,io", name="dataio"):
        for chain_id in (data_id, io_id):
            waited = proc.run(["result", chain_id, "--wait", "--timeout", "60s"], broker_env)
            assert waited.returncode == 0, waited.stderr
    data_doc, io_doc = status(broker_env, data_id), status(broker_env, io_id)
    assert [s["queue"] for s in data_doc["steps"]] == ["data", "data"]
    assert io_doc["steps"][0]["queue"] == "io"
    assert io_doc["result"]["files"][0]["sha256"] == hashlib.sha256(b"alpha").hexdigest()


def test_data_chain_on_a_worker_writes_its_tables_in_the_workspace(
    redis_worker: dict[str, str], workspace: Path
) -> None:
    shutil.copy(EXAMPLES / "sales.csv", workspace / "sales.csv")
    done = proc.run(
        [
            "submit",
            "data_chain",
            "--input",
            "sales.csv",
            "--steps",
            "clean,transform,analyze",
            "--wait",
            "--timeout",
            "60s",
        ],
        redis_worker,
    )
    assert done.returncode == 0, done.stderr
    doc = status(redis_worker, done.stdout.strip())
    assert [s["status"] for s in doc["steps"]] == ["COMPLETED"] * 3
    for step in doc["steps"]:
        written = json.dumps(step["result"])
        assert ".taskchain/" in written  # each step names the file it wrote, in the workspace
    chain_dir = workspace / ".taskchain" / doc["id"]
    assert chain_dir.is_dir() and any(chain_dir.iterdir())


def test_io_chain_on_a_worker_and_a_refused_path(
    redis_worker: dict[str, str], workspace: Path
) -> None:
    done = proc.run(
        ["submit", "io_chain", "--targets", "notes/a.txt", "--write", "hello", "--ops", "read", "--copy", "backup",
         "--ops", "checksum", "--wait", "--timeout", "60s"],
        redis_worker,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = status(redis_worker, done.stdout.strip())
    assert doc["steps"][1]["result"]["files"][0]["text"] == "hello"
    assert (workspace / "backup" / "a.txt").read_text() == "hello"
    assert doc["result"]["files"][0]["sha256"] == hashlib.sha256(b"hello").hexdigest()
    refused = proc.run(
        ["submit", "io_chain", "--targets", "../escape.txt", "--ops", "read"], redis_worker
    )
    assert refused.returncode == 2
    assert "outside the workspace" in refused.stderr
