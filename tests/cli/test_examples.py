"""Every example chain file in examples/ runs to COMPLETED (embedded mode)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(
    p for p in EXAMPLES.iterdir() if p.suffix in (".json", ".yaml") and "_chain" in p.stem
)


def test_there_is_a_json_and_a_yaml_example_for_every_type() -> None:
    names = {p.name for p in FILES}
    for kind in ("math_chain", "data_chain", "io_chain"):
        assert {f"{kind}.json", f"{kind}.yaml"} <= names


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example_runs(
    runner: CliRunner, workspace: Path, monkeypatch: pytest.MonkeyPatch, path: Path
) -> None:
    # The examples name their inputs from the repository root, as a user runs them.
    shutil.copytree(EXAMPLES, workspace / "examples")
    monkeypatch.chdir(workspace)
    kind = path.stem.split(".")[0]
    result = runner.invoke(app, ["submit", kind, "--config-file", str(path), "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(runner.invoke(app, ["status", result.stdout.strip(), "--json"]).stdout)
    assert doc["status"] == "COMPLETED"
    assert all(step["status"] == "COMPLETED" for step in doc["steps"])
    assert doc["result"] is not None
