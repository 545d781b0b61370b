"""Every test gets its own SQLite store and workspace; nothing touches the user's data dir,
and nothing in the caller's environment (TASKCHAIN_*, colour or terminal settings) leaks in.

Fixtures: `isolated` (autouse; the workspace), `workspace`, `runner` (a CliRunner), `env` (for
subprocesses). Service and hygiene fixtures: tests/support/fixtures.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain import settings
from taskchain.store import dispose_engines

pytest_plugins = ["tests.support.fixtures"]

#: The suite's own switch (tests/support/services.py), not a taskchain setting.
_SUITE_VARS = ("TASKCHAIN_REQUIRE_SERVICES",)
#: What Rich and taskchain read to decide on colour, live redraw and width: a developer's
#: FORCE_COLOR=1 or COLUMNS=60, or CI=true, must not change what a test sees.
_TERMINAL_VARS = (
    "NO_COLOR",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "CI",
    "TERM",
    "COLORTERM",
    "COLUMNS",
    "LINES",
    "JUPYTER_COLUMNS",
    "JUPYTER_LINES",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Embedded mode, a fresh store and a workspace folder under tmp_path."""
    for name in [n for n in os.environ if n.startswith("TASKCHAIN_")]:
        if name not in _SUITE_VARS:
            monkeypatch.delenv(name)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("TASKCHAIN_WORKSPACE", str(workspace))
    for name in _TERMINAL_VARS:
        monkeypatch.delenv(name, raising=False)
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
def env(request: pytest.FixtureRequest, isolated: Path) -> dict[str, str]:
    """Environment for subprocesses: the same store and workspace as this test."""
    if "store_url" in request.fixturenames:  # on each backend: its store, set up first
        request.getfixturevalue("store_url")
    result = {k: v for k, v in os.environ.items() if not k.startswith("TASKCHAIN_")}
    result["TASKCHAIN_DATABASE_URL"] = os.environ["TASKCHAIN_DATABASE_URL"]
    result["TASKCHAIN_WORKSPACE"] = str(isolated)
    result["PYTHONUNBUFFERED"] = "1"
    return result
