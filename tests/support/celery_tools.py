"""Fixtures and helpers for the tests of taskchain among Celery's tools: a redis-server of
their own (one per session, flushed for each test), Celery's own command line, and waiting
on conditions instead of sleeping.

Import the fixtures into a test module: `from tests.support.celery_tools import broker, ...`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support import proc, services

T = TypeVar("T")
CELERY = [sys.executable, "-m", "celery"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def private_redis(redis_server: services.RedisServer) -> str:
    """`redis://127.0.0.1:PORT`: the suite's own redis-server (nothing on disk)."""
    return f"redis://127.0.0.1:{redis_server.port}"


@pytest.fixture
def broker(private_redis: str) -> Iterator[str]:
    """A broker URL on the private Redis, every database empty at the start of the test."""
    import redis

    client = redis.Redis.from_url(private_redis)
    client.flushall()
    client.close()
    yield f"{private_redis}/0"


@pytest.fixture
def celery_env(env: dict[str, str], broker: str) -> dict[str, str]:
    """Distributed mode on the private Redis, with a result backend and the test chain type."""
    return {
        **env,
        "TASKCHAIN_BROKER_URL": broker,
        "TASKCHAIN_RESULT_BACKEND": broker.rsplit("/", 1)[0] + "/1",
        "TASKCHAIN_PLUGINS": "tests.support.chains",
        "TASKCHAIN_BROKER_TIMEOUT": "10",  # a loaded machine is slow, not down
    }


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """`check()`'s first truthy value, asked every 0.1 s for up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def celery(
    args: list[str], env: Mapping[str, str], *, app: str = "taskchain", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`celery -A APP ARGS` as a user types it."""
    return subprocess.run(
        [*CELERY, "-A", app, *args], env=dict(env), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@contextmanager
def background(
    argv: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running command (Flower, `celery events`, another app's worker), its output in
    `log`, stopped at the end."""
    handle = log.open("wb")
    process = subprocess.Popen(
        argv, env=dict(env), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        proc.stop(process)
        handle.close()


def status(chain_id: str, env: Mapping[str, str]) -> dict[str, Any]:
    done = proc.run(["status", chain_id, "--json"], env)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def submit(args: list[str], env: Mapping[str, str]) -> str:
    done = proc.run(["submit", *args, "-q"], env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
