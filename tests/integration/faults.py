"""Helpers for the fault tests: distributed mode in this process, waiting on the store."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from taskchain import settings
from taskchain.engine.submit import submit
from taskchain.store import Status, queries, session


def use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Make this process a client of the same broker and store as the workers."""
    for key, value in env.items():
        if key.startswith("TASKCHAIN_"):
            monkeypatch.setenv(key, value)
    settings.configure()


def probe(steps: list[dict], chain_id: str | None = None) -> str:
    return submit("probe_chain", {"steps": steps}, chain_id=chain_id).chain_id


def statuses(ids: list[str]) -> dict[str, Status]:
    with session() as s:
        return {i: queries.get_chain(session=s, chain_id=i).chain.status for i in ids}


def wait_finished(ids: list[str], timeout: float) -> float:
    """Seconds until every chain finished; fails the test with the stragglers otherwise."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(s.finished for s in statuses(ids).values()):
            return time.monotonic() - start
        time.sleep(0.25)
    left = {i: s for i, s in statuses(ids).items() if not s.finished}
    pytest.fail(f"{len(left)} chains unfinished after {timeout}s: {list(left.items())[:5]}")


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def running_steps() -> list[tuple[str, int, str | None]]:
    with session() as s:
        rows = s.exec(
            queries.select(queries.StepRecord).where(queries.StepRecord.status == Status.RUNNING)
        ).all()
    return [(r.chain_id, r.index, r.worker) for r in rows]


def log_figure(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        print(f"\n[figure] {line}")


def worker_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    return {
        **env,
        "TASKCHAIN_PLUGINS": "tests.support.chains",
        "TASKCHAIN_STEP_LEASE": "5",
        "TASKCHAIN_REDISPATCH_AFTER": "10",
        **extra,
    }


def workspace_of(env: dict[str, str]) -> Path:
    return Path(env["TASKCHAIN_WORKSPACE"])
