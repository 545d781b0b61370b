"""Running the real `taskchain` command and a real worker as subprocesses.

Every background process goes through `spawn`, which remembers it: the autouse `reaped`
fixture (tests/support/fixtures.py) kills whatever a test left running, failed or not.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TASKCHAIN = [sys.executable, "-m", "taskchain"]

_spawned: list[subprocess.Popen[Any]] = []


def startup(env: Mapping[str, str]) -> float:
    """Seconds starting a command takes right now: a Python that imports what `submit` and
    the read commands import (the CLI, the store's queries, the Celery app), which is what a
    busy machine slows most (`--version` imports almost nothing). A test's "fails within N
    seconds" allows N plus a few of these, so the limit grows with the load instead of
    flaking, and still catches a command that hangs."""
    code = "import taskchain.cli, taskchain.store.queries, taskchain.engine.app"
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], env=dict(env), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return time.monotonic() - start


def within(seconds: float, env: Mapping[str, str]) -> float:
    """A limit for a command that must finish in `seconds` on an idle machine."""
    return seconds + 3 * startup(env)


def spawn(args: list[str], env: Mapping[str, str], **kw: Any) -> subprocess.Popen[Any]:
    """A background process in its own process group, killed at the end of the test."""
    child: subprocess.Popen[Any] = subprocess.Popen(
        args, env=dict(env), start_new_session=True, **kw
    )
    _spawned.append(child)
    return child


def spawn_taskchain(args: list[str], env: Mapping[str, str], **kw: Any) -> subprocess.Popen[Any]:
    return spawn([*TASKCHAIN, *args], env, **kw)


def reap() -> list[list[str]]:
    """Kill every process `spawn` started that still runs; the commands that had to be killed."""
    leftover = []
    while _spawned:
        child = _spawned.pop()
        if child.poll() is None:
            leftover.append([str(a) for a in child.args])  # type: ignore[union-attr]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    return leftover


class Lines:
    """The lines a process writes to a pipe, read by a thread, handed out one at a time with
    a timeout (a bare readline() would hang the test if the line never came)."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next(self, timeout: float = 60) -> str:
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout}s; so far: {self.seen}") from None
        if line is None:
            self._queue.put(None)
            raise AssertionError(f"the output ended; it was: {self.seen}")
        self.seen.append(line)
        return line

    def until(self, wanted: str, timeout: float = 60) -> list[str]:
        """Lines up to and including `wanted`."""
        start = len(self.seen)
        while self.next(timeout) != wanted:
            pass
        return self.seen[start:]

    def rest(self, timeout: float = 60) -> list[str]:
        """Every line until the output ends."""
        start = len(self.seen)
        with contextlib.suppress(AssertionError):
            while True:
                self.next(timeout)
        return self.seen[start:]


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
    proc = spawn_taskchain(
        ["worker", "-c", str(concurrency), "-Q", queues, "-n", f"{name}@%h", "-P", pool,
         "--loglevel", "INFO"],
        env, stdout=handle, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_ready(proc, log)
        yield proc
    finally:
        stop(proc)
        handle.close()


def wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
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
