"""CliRunner shorthands shared by the CLI tests."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from taskchain.cli import app


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(app, list(args))


def submit_quiet(runner: CliRunner, chain_type: str, *args: str, code: int = 0) -> str:
    """`submit TYPE ARGS -q`, asserting its exit code; the id it printed."""
    result = invoke(runner, "submit", chain_type, *args, "-q")
    assert result.exit_code == code, result.output
    return result.stdout.strip()


def status(runner: CliRunner, chain_id: str) -> dict:
    result = invoke(runner, "status", chain_id, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
