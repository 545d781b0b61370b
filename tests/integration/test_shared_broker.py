"""One broker, two Celery applications: taskchain and a neighbour with Celery's defaults
(tests/support/other_app.py). Each worker gets only its own application's work."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.support import celery_tools, proc
from tests.support.celery_tools import CELERY, background, celery, submit

# Fixtures used by name: a private Redis, flushed per test, and a distributed environment.
private_redis, broker, celery_env = (
    celery_tools.private_redis,
    celery_tools.broker,
    celery_tools.celery_env,
)

pytestmark = pytest.mark.redis
HOST = socket.gethostname()


def test_taskchain_and_another_celery_app_share_a_broker_each_taking_only_its_own_work(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    import redis
    from celery import Celery

    env = celery_env
    url = env["TASKCHAIN_BROKER_URL"]
    other_env = {**env, "OTHER_BROKER_URL": url, "OTHER_RESULT_BACKEND": url[:-1] + "2"}
    other = Celery("other", broker=url, backend=other_env["OTHER_RESULT_BACKEND"])
    queues = redis.Redis.from_url(url)
    ours, theirs = tmp_path / "taskchain.log", tmp_path / "other.log"
    with proc.worker(env, ours, name="w1"):
        # The neighbour's task waits in Celery's `celery` queue while taskchain's worker runs
        # a chain to the end: the taskchain worker does not take it.
        sent = other.send_task("other.echo", args=["hello"])
        first = submit(["math_chain", "--numbers", "1", "2", "3", "--wait"], env)
        assert queues.llen("celery") == 1
        # The neighbour's worker, with Celery's defaults, consumes `celery` only.
        other_worker = [*CELERY, "-A", "tests.support.other_app", "worker", "-P", "solo",
                        "-n", "other@%h", "-l", "INFO"]  # fmt: skip
        with background(other_worker, other_env, theirs):
            # (An embedded worker an earlier test ran in this process tells Celery it is inside a
            # worker, where get() refuses to block; here it is only a client.)
            assert sent.get(timeout=90, disable_sync_subtasks=False) == "other app got hello"
            second = submit(["math_chain", "--numbers", "4", "5", "--wait"], env)
            again = other.send_task("other.echo", args=["again"])
            assert again.get(timeout=90, disable_sync_subtasks=False) == "other app got again"
            # Remote control is separate too: each app's tools see only its own workers.
            workers = proc.run(["workers", "--json"], env)
            other_ping = celery(["inspect", "ping", "--json", "--timeout", "2"], other_env,
                                app="tests.support.other_app")  # fmt: skip
    assert queues.llen("celery") == 0
    mine, neighbour = ours.read_text(), theirs.read_text()
    for chain_id in (first, second):
        done = proc.run(["result", chain_id, "--json"], env)
        assert json.loads(done.stdout)["status"] == "COMPLETED", done.stdout
    assert mine.count("Task math_chain.add[") == 2 * 3  # 3 steps, received and succeeded
    assert "other.echo" not in mine
    assert neighbour.count("Task other.echo[") == 2 * 2
    assert "taskchain" not in neighbour and "math_chain" not in neighbour
    assert [w["name"] for w in json.loads(workers.stdout)["workers"]] == [f"w1@{HOST}"]
    assert json.loads(other_ping.stdout) == {f"other@{HOST}": {"ok": "pong"}}
