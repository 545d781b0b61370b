"""Unreachable services in distributed mode, with real processes: a worker gives up after the
broker timeout (exit 4) unless --wait-for-broker, and a submit whose result backend is down
records nothing. Each test starts its own redis-server on a free port and stops it."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import proc, services

# Redis only: each test starts and stops a redis-server of its own (an unreachable, late or
# half-available broker); the exit-4 paths are the same code on every transport.
pytestmark = pytest.mark.redis
CLOSED = "127.0.0.1:6599"  # nothing listens there


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(port: int, folder: Path) -> Iterator[str]:
    """A redis-server of our own on `port` (the suite's `RedisServer`), stopped at the end."""
    server = services.RedisServer(folder)
    server.start(port)
    try:
        yield server.url(0)
    finally:
        server.stop()


def test_worker_with_unreachable_broker_exits_4_after_the_broker_timeout(
    env: dict[str, str],
) -> None:
    wenv = {**env, "TASKCHAIN_BROKER_URL": f"redis://:hunter2@{CLOSED}/0",
            "TASKCHAIN_BROKER_TIMEOUT": "2"}  # fmt: skip
    started = time.monotonic()
    done = proc.run(["worker", "-P", "solo"], wenv, timeout=30)
    elapsed = time.monotonic() - started
    assert done.returncode == 4, done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"taskchain: error: broker redis://:***@{CLOSED}/0 is unreachable: Error 111 connecting "
        "to 127.0.0.1:6599. Connection refused. (gave up after 2s; --wait-for-broker keeps "
        "trying)\n"
    )
    assert 2 <= elapsed < 15, elapsed  # the timeout, plus interpreter start-up


def test_worker_with_unreachable_result_backend_exits_4(
    env: dict[str, str], tmp_path: Path
) -> None:
    with redis_server(free_port(), tmp_path) as broker:
        wenv = {**env, "TASKCHAIN_BROKER_URL": broker, "TASKCHAIN_BROKER_TIMEOUT": "1",
                "TASKCHAIN_RESULT_BACKEND": f"redis://{CLOSED}/1"}  # fmt: skip
        done = proc.run(["worker", "-P", "solo"], wenv, timeout=30)
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith(
        f"taskchain: error: result backend redis://{CLOSED}/1 is unreachable: Error 111"
    )
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_worker_waits_for_the_broker_and_starts_when_it_comes(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "worker.log"
    wenv = {**env, "TASKCHAIN_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    with log.open("wb") as handle:
        worker = subprocess.Popen(
            [*proc.TASKCHAIN, "worker", "-P", "solo", "--wait-for-broker"],
            env=wenv, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            expected = (
                f"taskchain: broker redis://127.0.0.1:{port}/0 is unreachable: Error 111 "
                f"connecting to 127.0.0.1:{port}. Connection refused."
            )
            deadline = time.monotonic() + 30
            while log.read_text().count(expected) < 3:
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            lines = log.read_text().splitlines()
            # One line per retry, each saying how long until the next, growing.
            assert lines[:3] == [
                f"{expected} (retry 1 in 0.5s)",
                f"{expected} (retry 2 in 1s)",
                f"{expected} (retry 3 in 2s)",
            ]
            assert worker.poll() is None  # still waiting, not given up
            with redis_server(port, tmp_path):
                proc.wait_ready(worker, log, timeout=60)
                proc.stop(worker)
        finally:
            proc.stop(worker)
    assert "Traceback" not in log.read_text()


def test_submit_with_unreachable_result_backend_records_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    import redis

    with redis_server(free_port(), tmp_path) as broker:
        senv = {**env, "TASKCHAIN_BROKER_URL": broker, "TASKCHAIN_BROKER_TIMEOUT": "1",
                "TASKCHAIN_RESULT_BACKEND": f"redis://:hunter2@{CLOSED}/1"}  # fmt: skip
        started = time.monotonic()
        done = proc.run(["submit", "math_chain", "--numbers", "1", "2", "-q"], senv)
        elapsed = time.monotonic() - started
        queued = redis.Redis.from_url(broker).llen("taskchain.math")
        info = proc.run(["info", "--json"], senv)
    assert done.returncode == 4, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith(
        f"taskchain: error: result backend redis://:***@{CLOSED}/1 is unreachable: Error 111"
    )
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert elapsed < 15, elapsed
    assert queued == 0  # nothing reached the broker either
    facts = json.loads(info.stdout)
    assert (facts["broker"], facts["result_backend"]) == ("ok", f"redis://:***@{CLOSED}/1")
    assert facts["result_backend_state"] == (
        f"unreachable: Error 111 connecting to {CLOSED}. Connection refused."
    )
    listed = proc.run(["list", "--json"], env)
    assert (listed.returncode, listed.stdout.strip()) == (0, "[]")  # a retried CI step starts clean
