"""`taskchain workers`: the workers online, their queues and active steps, the queues' depth."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support import celery_tools, proc
from tests.support.celery_tools import free_port, status, submit, wait_for
from tests.support.cli import invoke

# Fixtures used by name: a private Redis, flushed per test, and a distributed environment.
private_redis, broker, celery_env = (
    celery_tools.private_redis,
    celery_tools.broker,
    celery_tools.celery_env,
)

HOST = socket.gethostname()
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def queues(default: int = 0, math: int = 0, data: int = 0, io: int = 0) -> list[dict]:
    depths = {"default": default, "math": math, "data": data, "io": io}
    return [{"name": f"taskchain.{f}", "family": f, "depth": d} for f, d in depths.items()]


def test_workers_in_embedded_mode_says_there_is_no_broker(runner: CliRunner) -> None:
    result = invoke(runner, "workers")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "taskchain: error: no broker configured: in embedded mode `submit` runs chains itself "
        "and no worker serves a queue. Set TASKCHAIN_BROKER_URL (e.g. redis://127.0.0.1:6379/0)"
        " or pass --broker-url\n"
    )


def test_workers_with_the_broker_down_is_exit_4_in_one_line(runner: CliRunner) -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    result = invoke(
        runner, "--broker-url", f"redis://:hunter2@127.0.0.1:{port}/0", "--broker-timeout", "1",
        "workers", "--json",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr == (
        f"taskchain: error: broker redis://:***@127.0.0.1:{port}/0 is unreachable: "
        f"Error 111 connecting to 127.0.0.1:{port}. Connection refused.\n"
    )
    assert elapsed < 10, elapsed


@pytest.mark.redis
def test_no_worker_online_is_not_an_error_and_queued_steps_are_counted(
    runner: CliRunner, celery_env: dict[str, str], workspace: Path
) -> None:
    for numbers in (["1", "2"], ["3", "4"]):
        submit(["math_chain", "--numbers", *numbers], celery_env)
    submit(["probe_chain", "--config", '{"steps": [{}]}'], celery_env)
    url = celery_env["TASKCHAIN_BROKER_URL"]
    result = invoke(runner, "--broker-url", url, "workers", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "schema_version": 1, "broker": url, "workers": [], "queues": queues(default=1, math=2),
    }  # fmt: skip
    result = invoke(runner, "--broker-url", url, "workers")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "queue              depth",
        "taskchain.default      1",
        "taskchain.math         2",
        "taskchain.data         0",
        "taskchain.io           0",
        "",
        "no workers online",
    ]
    assert result.stderr == ""


@pytest.mark.redis
def test_workers_shows_a_real_worker_its_queues_counts_and_active_step(
    runner: CliRunner, celery_env: dict[str, str], workspace: Path, tmp_path: Path
) -> None:
    env = celery_env
    url = env["TASKCHAIN_BROKER_URL"]
    (workspace / "t.csv").write_text("a,b\n1,2\n")
    with proc.worker(env, tmp_path / "w.log", name="w1", queues="default,math"):
        done = proc.run(["submit", "math_chain", "--numbers", "1", "2", "--wait", "-q"], env)
        assert done.returncode == 0, done.stderr
        slow = submit(["probe_chain", "--config", '{"steps": [{"sleep": 120}]}'], env)
        submit(["data_chain", "--input", "t.csv", "--steps", "clean"], env)  # nobody serves data
        wait_for(lambda: status(slow, env)["status"] == "RUNNING", timeout=60, what="RUNNING")
        result = invoke(runner, "--broker-url", url, "workers", "--json")
        text = invoke(runner, "--broker-url", url, "workers")
        proc.run(["cancel", slow, "--terminate"], env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (worker,) = doc["workers"]
    (active,) = worker.pop("active")
    assert isinstance(worker.pop("pid"), int)
    assert worker == {
        "name": f"w1@{HOST}",
        "queues": ["taskchain.default", "taskchain.math"],
        "families": ["default", "math"],
        "concurrency": 2,
        "processed": 2,
        "processed_by_task": {"math_chain.add": 1, "probe_chain.probe": 1},
    }
    started = active.pop("started_at")
    assert ISO.fullmatch(started), started
    assert active == {
        "chain_id": slow, "index": 0, "task": "probe_chain.probe",
        "task_id": status(slow, env)["steps"][0]["task_id"],
    }  # fmt: skip
    assert doc["queues"] == queues(data=1)
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[5:] == [
        "",
        f"w1@{HOST}  concurrency 2  processed 2  queues taskchain.default, taskchain.math",
        f"  running chain {slow} step 1 (probe_chain.probe) since {started}",
        "",
        "1 worker online",
    ]


@pytest.fixture
def rabbitmq_vhost() -> Iterator[str]:
    """An AMQP URL on a RabbitMQ virtual host made for this test and deleted after it."""
    import shutil
    import subprocess
    import uuid

    from tests.support import services

    services.require("RabbitMQ", services.RABBITMQ)
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    vhost = f"taskchain_test_{uuid.uuid4().hex[:8]}"
    ctl = ["rabbitmqctl", "-q"]
    subprocess.run([*ctl, "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(
            [*ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, timeout=60)


@pytest.mark.rabbitmq
def test_workers_counts_queued_steps_on_rabbitmq_too(
    runner: CliRunner, env: dict[str, str], rabbitmq_vhost: str
) -> None:
    amqp_env = {**env, "TASKCHAIN_BROKER_URL": rabbitmq_vhost}
    for numbers in (["1", "2"], ["3", "4"]):
        submit(["math_chain", "--numbers", *numbers], amqp_env)
    result = invoke(runner, "--broker-url", rabbitmq_vhost, "workers", "--json")
    assert result.exit_code == 0, result.output
    # Queues nobody declared yet (RabbitMQ answers 404) hold nothing.
    assert json.loads(result.stdout) == {
        "schema_version": 1, "broker": rabbitmq_vhost.replace(":guest@", ":***@"),
        "workers": [], "queues": queues(math=2),
    }  # fmt: skip
