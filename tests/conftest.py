"""Every test gets its own SQLite store and workspace; nothing touches the user's data dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain import settings
from taskchain.store import dispose_engines

pytest_plugins = ["tests.support.fixtures"]

_VARS = (
    "BROKER_URL",
    "RESULT_BACKEND",
    "DATABASE_URL",
    "WORKSPACE",
    "TASK_TIME_LIMIT",
    "STEP_LEASE",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Embedded mode, a fresh store and a workspace folder under tmp_path."""
    for name in _VARS:
        monkeypatch.delenv(f"TASKCHAIN_{name}", raising=False)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("TASKCHAIN_WORKSPACE", str(workspace))
    monkeypatch.delenv("NO_COLOR", raising=False)
    settings.configure()
    yield workspace
    settings.configure()
    dispose_engines()


@pytest.fixture
def workspace(isolated: Path) -> Path:
    return isolated


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def env(tmp_path: Path, isolated: Path) -> dict[str, str]:
    """Environment for subprocesses: the same store and workspace as this test."""
    result = {k: v for k, v in os.environ.items() if not k.startswith("TASKCHAIN_")}
    result["TASKCHAIN_DATABASE_URL"] = f"sqlite:///{tmp_path / 'store.db'}"
    result["TASKCHAIN_WORKSPACE"] = str(isolated)
    result["PYTHONUNBUFFERED"] = "1"
    return result
