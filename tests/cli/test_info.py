"""`info` as text: one aligned `key  value` line per fact, the same facts as `--json`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from taskchain import __version__
from taskchain.cli import app


def text_facts(runner: CliRunner) -> list[tuple[str, str]]:
    result = runner.invoke(app, ["info"])
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    lines = result.stdout.splitlines()
    width = max(len(line.split(" ", 1)[0]) for line in lines)
    facts = []
    for line in lines:
        key, value = line[:width], line[width + 2 :]
        assert line[width : width + 2] == "  " and key.rstrip() == key.strip(), line
        facts.append((key.rstrip(), value))
    return facts


def json_facts(runner: CliRunner) -> dict:
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc.pop("schema_version") == 1
    return doc


def shown(value: object) -> str:
    if value is None:
        return ""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def test_info_text_lists_every_fact_of_the_json_in_order(
    runner: CliRunner, workspace: Path, tmp_path: Path
) -> None:
    assert runner.invoke(app, ["submit", "math_chain", "--numbers", "1", "2", "-q"]).exit_code == 0
    facts = text_facts(runner)
    doc = json_facts(runner)
    assert [key for key, _ in facts] == list(doc)
    assert facts == [(key, shown(value)) for key, value in doc.items()]
    table = dict(facts)
    assert table["version"] == __version__
    assert table["mode"] == "embedded"
    assert table["broker_url"] == ""
    assert table["database_url"] == f"sqlite:///{tmp_path / 'store.db'}"
    assert table["workspace"] == str(workspace)
    assert table["store"] == "ok (1 chains)"
    assert table["broker"] == "embedded (steps run inside the submitting process)"
    assert table["workers"] == ""
