"""Running the real `taskchain` command and a real worker as subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

TASKCHAIN = [sys.executable, "-m", "taskchain"]


def run(
    args: list[str], env: Mapping[str, str], *, timeout: float = 60, **kw: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TASKCHAIN, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,  # type: ignore[call-overload]
    )


@contextmanager
def worker(
    env: Mapping[str, str],
    log: Path,
    *,
    concurrency: int = 2,
    queues: str = "celery,math,data,io",
    name: str = "w1",
    pool: str = "prefork",
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `taskchain worker`, started in its own process group and stopped at the end."""
    handle = log.open("wb")
    proc = subprocess.Popen(
        [*TASKCHAIN, "worker", "-c", str(concurrency), "-Q", queues, "-n", f"{name}@%h",
         "-P", pool, "--loglevel", "INFO"],
        env=dict(env), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_ready(proc, log)
        yield proc
    finally:
        stop(proc)
        handle.close()


def wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{log.read_text()}")
        if b"ready." in log.read_bytes():
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready after {timeout}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
