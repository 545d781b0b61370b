"""`submit --batch`: many chains from JSON Lines, validated as a whole, ids in input order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from taskchain.cli import app
from taskchain.store import ChainRecord, session
from tests.support.cli import invoke, status


def feed(runner: CliRunner, text: str, *args: str) -> Any:
    """`submit --batch - ARGS` with `text` on stdin."""
    return runner.invoke(app, ["submit", "--batch", "-", *args], input=text)


def lines(*chains: dict) -> str:
    return "".join(json.dumps(chain) + "\n" for chain in chains)


def count_chains() -> int:
    from sqlalchemy import func, select

    with session() as s:
        return int(s.scalar(select(func.count()).select_from(ChainRecord)) or 0)


def math(*numbers: int, **extra: object) -> dict:
    return {"type": "math_chain", "config": {"numbers": list(numbers)}, **extra}


def test_a_batch_runs_every_chain_and_prints_ids_in_input_order(
    runner: CliRunner, tmp_path: Path
) -> None:
    batch = tmp_path / "chains.jsonl"
    batch.write_text(
        lines(math(1, 2), math(10, 20, 30, id="named", description="third"))
        + "\n"
        + lines(math(2, 10, operation="power"))
    )
    # The last line's "operation" is outside "config": a line's fields are checked.
    result = invoke(runner, "submit", "--batch", str(batch), "-q")
    assert result.exit_code == 2
    assert result.stderr == "taskchain: error: line 4: unknown field 'operation' " \
        "(fields: type, config, description, id)\n"  # fmt: skip
    assert count_chains() == 0  # nothing recorded

    batch.write_text(
        lines(math(1, 2), math(10, 20, 30, id="named", description="third"))
        + "\n"
        + lines({"type": "math_chain", "config": {"numbers": [2, 10], "operation": "power"}})
    )
    result = invoke(runner, "submit", "--batch", str(batch), "-q")
    assert result.exit_code == 0, result.output
    ids = result.stdout.split()
    assert len(ids) == 3 and ids[1] == "named"
    assert [status(runner, i)["result"] for i in ids] == [3, 60, 1024]
    assert status(runner, "named")["description"] == "third"
    assert [status(runner, i)["status"] for i in ids] == ["COMPLETED"] * 3


def test_a_bad_line_is_named_and_nothing_is_recorded(runner: CliRunner, tmp_path: Path) -> None:
    batch = tmp_path / "chains.jsonl"
    batch.write_text(lines(math(1, 2), math(3, 4)) + "{not json\n")
    result = invoke(runner, "submit", "--batch", str(batch))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "taskchain: error: line 3: invalid JSON: Expecting property name " \
        "enclosed in double quotes at column 2\n"  # fmt: skip
    batch.write_text(lines(math(1, 2), {"type": "math_chain", "config": {"numbers": "x"}}))
    result = invoke(runner, "submit", "--batch", str(batch))
    assert result.exit_code == 2
    assert result.stderr.startswith("taskchain: error: line 2: math_chain config: numbers: ")
    batch.write_text(lines(math(1, 2), {"type": "no_such_chain"}))
    result = invoke(runner, "submit", "--batch", str(batch))
    assert result.exit_code == 2
    assert result.stderr.startswith("taskchain: error: line 2: unknown chain type 'no_such_chain'")
    assert count_chains() == 0


def test_duplicate_ids_within_a_batch_are_refused(runner: CliRunner, tmp_path: Path) -> None:
    batch = tmp_path / "chains.jsonl"
    batch.write_text(lines(math(1, 2, id="a"), math(3, 4, id="b"), math(5, 6, id="a")))
    result = invoke(runner, "submit", "--batch", str(batch))
    assert result.exit_code == 2
    assert result.stderr == "taskchain: error: line 3: id 'a' is used already by line 1\n"
    assert count_chains() == 0


def test_existing_ids_are_printed_and_not_run_again(runner: CliRunner) -> None:
    first = feed(runner, lines(math(1, 2, id="keep")), "-q")
    assert (first.exit_code, first.stdout) == (0, "keep\n")
    again = lines(math(7, 7, id="new"), math(100, 100, id="keep"))  # changed input: ignored
    result = feed(runner, again)
    assert result.exit_code == 0, result.output
    assert result.stdout == "new\nkeep\n"
    assert "submitted 2 chains: 1 new, 1 existed" in result.stderr
    assert status(runner, "keep")["result"] == 3
    assert status(runner, "keep")["steps"][0]["attempts"] == 1
    assert status(runner, "new")["result"] == 14


def test_the_exit_code_is_1_unless_every_chain_completed(runner: CliRunner) -> None:
    divide = {"type": "math_chain", "config": {"numbers": [1, 0], "operation": "divide"}}
    result = feed(runner, lines(math(1, 2), divide), "-q")
    assert result.exit_code == 1
    ids = result.stdout.split()
    assert [status(runner, i)["status"] for i in ids] == ["COMPLETED", "FAILED"]
    assert "division by zero" in result.stderr


def test_batch_usage_errors(runner: CliRunner, tmp_path: Path) -> None:
    cases = [
        (("submit", "math_chain", "--batch", "-"), "--batch takes the chains from its file: "
         "give no TYPE or options"),
        (("submit", "--batch", str(tmp_path / "missing.jsonl")),
         f"batch file {str(tmp_path / 'missing.jsonl')!r} does not exist"),
        (("submit", "--batch", "-"), "stdin holds no chains (one JSON object per line)"),
        (("submit",), "missing TYPE (math_chain, data_chain or io_chain), or --batch FILE"),
    ]  # fmt: skip
    for args, message in cases:
        result = invoke(runner, *args)
        assert (result.exit_code, result.stderr) == (2, f"taskchain: error: {message}\n"), args
