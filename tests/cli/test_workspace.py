"""A chain records the workspace it was validated against; `status` shows it, and an embedded
`retry` from another workspace is refused before anything changes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain import settings
from tests.support.cli import invoke, status, submit_quiet


def test_status_shows_the_workspace_and_the_submitting_host(
    runner: CliRunner, workspace: Path
) -> None:
    chain_id = submit_quiet(runner, "math_chain", "--numbers", "1", "2")
    host = socket.gethostname()
    doc = status(runner, chain_id)
    assert (doc["workspace"], doc["submit_host"]) == (str(workspace.resolve()), host)
    lines = invoke(runner, "status", chain_id).stdout.splitlines()
    assert lines[2] == f"workspace {workspace.resolve()} (submitted on {host})"


def test_an_embedded_retry_from_another_workspace_is_refused(
    runner: CliRunner, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_id = submit_quiet(
        runner, "math_chain", "--numbers", "4", "0", "--operation", "divide", code=1
    )
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("TASKCHAIN_WORKSPACE", str(other))
    settings.configure()
    refused = invoke(runner, "retry", chain_id)
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr == (
        f"taskchain: error: workspace mismatch: this process uses {other.resolve()}, the chain "
        f"was submitted against {workspace.resolve()} on host {socket.gethostname()}; set "
        "TASKCHAIN_WORKSPACE the same on both\n"
    )
    doc = status(runner, chain_id)
    assert (doc["status"], doc["attempt"]) == ("FAILED", 1)  # nothing changed
