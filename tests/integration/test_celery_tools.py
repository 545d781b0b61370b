"""Celery's own tools on a taskchain deployment: `celery -A taskchain inspect | status |
events`, Flower, and what a failed step looks like to them (a real worker, a private Redis)."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import celery_tools, proc
from tests.support.celery_tools import (
    CELERY,
    background,
    celery,
    free_port,
    status,
    submit,
    wait_for,
)

# Fixtures used by name: a private Redis, flushed per test, and a distributed environment.
private_redis, broker, celery_env = (
    celery_tools.private_redis,
    celery_tools.broker,
    celery_tools.celery_env,
)

pytestmark = pytest.mark.redis
HOST = socket.gethostname()
SLOW = '{"steps": [{"sleep": 60}]}'


def inspect(command: str, env: dict[str, str]) -> dict[str, Any]:
    done = celery(["inspect", command, "--json", "--timeout", "2"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def test_celery_inspect_and_status_load_taskchain_and_see_its_worker(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    env = celery_env
    with proc.worker(env, tmp_path / "w.log", name="w1"):
        node = f"w1@{HOST}"
        assert inspect("ping", env) == {node: {"ok": "pong"}}
        assert inspect("registered", env) == {node: ["taskchain.run_step"]}
        done = celery(["status"], env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "1 node online."
        assert f"->  {node}: OK" in done.stdout

        # A step that runs for a while shows in `inspect active` under its readable name.
        chain_id = submit(["probe_chain", "--config", SLOW], env)
        wait_for(lambda: status(chain_id, env)["status"] == "RUNNING", timeout=60, what="RUNNING")
        task_id = status(chain_id, env)["steps"][0]["task_id"]
        active = inspect("active", env)[node]
        assert [(t["id"], t["name"], t["type"], t["args"]) for t in active] == [
            (task_id, "probe_chain.probe", "taskchain.run_step", [chain_id, 0])
        ]
        assert [t["delivery_info"]["routing_key"] for t in active] == ["taskchain.default"]

        stats = inspect("stats", env)[node]
        assert stats["pool"]["max-concurrency"] == 2
        assert stats["total"] == {"probe_chain.probe": 1}
        queues = inspect("active_queues", env)[node]
        assert sorted(q["name"] for q in queues) == [
            "taskchain.data", "taskchain.default", "taskchain.io", "taskchain.math",
        ]  # fmt: skip
        assert proc.run(["cancel", chain_id, "--terminate"], env).returncode == 0


def test_celery_events_sees_each_step_sent_received_and_succeeded_or_failed(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    env = celery_env
    log = tmp_path / "events.log"
    with (
        proc.worker(env, tmp_path / "w.log", name="w1"),
        background([*CELERY, "-A", "taskchain", "events", "--dump"], env, log),
    ):
        wait_for(lambda: b"starting capture" in log.read_bytes(), timeout=60, what="capture")
        good = submit(["math_chain", "--numbers", "1", "2", "3"], env)
        bad = submit(["math_chain", "--numbers", "4", "0", "--operation", "divide"], env)
        good_ids = [s["task_id"] for s in wait_done(good, env)["steps"]]
        (bad_id,) = [s["task_id"] for s in wait_done(bad, env)["steps"]]

        def seen(line: str) -> bool:
            return line in log.read_text()

        for task_id in good_ids:
            for event in ("sent", "received", "started", "succeeded"):
                wait_for(
                    lambda e=event, t=task_id: seen(f"task {e}: math_chain.add({t})"),
                    timeout=30, what=f"{event} of {task_id}",
                )  # fmt: skip
        wait_for(lambda: seen(f"task sent: math_chain.divide({bad_id})"), timeout=30, what="sent")
        wait_for(
            lambda: seen(f"task failed: math_chain.divide({bad_id})"), timeout=30, what="failed"
        )
    failed = next(
        line
        for line in log.read_text().splitlines()
        if f"failed: math_chain.divide({bad_id})" in line
    )
    assert "exception=StepFailed('division by zero (4 // 0)')" in failed
    assert "taskchain.run_step" not in log.read_text()  # every event has the readable name


def wait_done(chain_id: str, env: dict[str, str]) -> dict[str, Any]:
    return wait_for(
        lambda: (doc := status(chain_id, env))["status"] in ("COMPLETED", "FAILED") and doc,
        timeout=90,
        what=f"chain {chain_id} to finish",
    )


def test_a_failed_step_is_failure_in_the_result_backend_and_never_retried_by_celery(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    from celery import Celery

    env = celery_env
    log = tmp_path / "w.log"
    with proc.worker(env, log, name="w1"):
        good = submit(["math_chain", "--numbers", "1", "2"], env)
        bad = submit(["math_chain", "--numbers", "4", "0", "2", "--operation", "divide"], env)
        good_doc, bad_doc = wait_done(good, env), wait_done(bad, env)
    # A client of the result backend, as any Celery tool would be (not taskchain's own app).
    client = Celery(
        "reader", broker=env["TASKCHAIN_BROKER_URL"], backend=env["TASKCHAIN_RESULT_BACKEND"]
    )
    failed = client.AsyncResult(bad_doc["steps"][0]["task_id"])
    assert failed.state == "FAILURE"
    assert str(failed.result) == "division by zero (4 // 0)"
    assert type(failed.result).__name__ == "StepFailed"
    assert client.AsyncResult(good_doc["steps"][0]["task_id"]).state == "SUCCESS"
    # The step after the failure was never sent: Celery knows nothing of it.
    assert client.AsyncResult(bad_doc["steps"][1]["task_id"]).state == "PENDING"
    assert [(s["status"], s["attempts"]) for s in bad_doc["steps"]] == [
        ("FAILED", 1),
        ("SKIPPED", 0),
    ]
    text = log.read_text()
    task_id = bad_doc["steps"][0]["task_id"]
    assert (
        f"Task math_chain.divide[{task_id}] raised expected: "
        "StepFailed('division by zero (4 // 0)')" in text
    )
    assert text.count(f"[{task_id}] received") == 1  # not retried
    assert "Retry in" not in text
    assert "Traceback" not in text


def test_flower_lists_taskchain_steps_by_their_readable_names(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    pytest.importorskip("flower", reason="Flower is the optional extra `taskchain[flower]`")
    env = {**celery_env, "FLOWER_UNAUTHENTICATED_API": "true"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "flower.log"
    flower = [*CELERY, "-A", "taskchain", "flower", "--address=127.0.0.1", f"--port={port}",
              "--unix_socket="]  # fmt: skip
    with proc.worker(env, tmp_path / "w.log", name="w1"), background(flower, env, log):
        wait_for(lambda: get(f"{base}/healthcheck") == "OK", timeout=60, what="Flower up")
        chain_id = submit(["math_chain", "--numbers", "1", "2", "3"], env)
        ids = [s["task_id"] for s in wait_done(chain_id, env)["steps"]]

        def listed() -> dict[str, Any] | None:
            tasks = json.loads(get(f"{base}/api/tasks") or "{}")
            mine = {t: tasks[t] for t in ids if t in tasks}
            done = len(mine) == len(ids) and all(t["state"] == "SUCCESS" for t in mine.values())
            return mine if done else None

        tasks = wait_for(listed, timeout=60, what="Flower to list the chain's steps")
        workers = wait_for(
            lambda: json.loads(get(f"{base}/api/workers?refresh=1") or "{}"),
            timeout=60, what="Flower's workers",
        )  # fmt: skip
    assert [(tasks[t]["name"], tasks[t]["args"], tasks[t]["routing_key"]) for t in ids] == [
        ("math_chain.add", f"['{chain_id}', 0]", "taskchain.math"),
        ("math_chain.add", f"['{chain_id}', 1]", "taskchain.math"),
    ]
    assert list(workers) == [f"w1@{HOST}"]


def get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return None


def test_worker_options_reach_celery_first_class_and_after_the_double_dash(
    celery_env: dict[str, str], tmp_path: Path
) -> None:
    env = celery_env
    log = tmp_path / "w.log"
    argv = [*proc.TASKCHAIN, "worker", "-c", "1", "-n", "w2@%h", "--no-events",
            "--max-tasks-per-child", "100", "--", "--autoscale", "8,2"]  # fmt: skip
    with background(argv, env, log) as worker:
        proc.wait_ready(worker, log, timeout=60)
        stats = inspect("stats", env)[f"w2@{HOST}"]
    assert stats["pool"]["max-tasks-per-child"] == 100
    assert (stats["autoscaler"]["max"], stats["autoscaler"]["min"]) == (8, 2)
    assert ".> task events: OFF" in log.read_text()

    with proc.worker(env, tmp_path / "default.log", name="w3"):
        pass
    assert ".> task events: ON" in (tmp_path / "default.log").read_text()

    bad = proc.run(["worker", "-c", "1", "--", "--bogus", "1"], env)
    assert bad.returncode == 2
    assert bad.stderr == (
        "taskchain: error: celery worker: No such option '--bogus' (see 'celery worker --help')\n"
    )
