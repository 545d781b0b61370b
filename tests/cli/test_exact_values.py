"""End to end through the CLI (embedded mode): integers come back exactly as JSON integers,
on SQLite and PostgreSQL; impossible inputs and unusable store paths are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taskchain import settings
from taskchain.cli import app

FOUR_THOUSAND_NINES = int("9" * 4000)


def submit(runner: CliRunner, *numbers: str, operation: str = "add") -> str:
    done = runner.invoke(
        app, ["submit", "math_chain", "--numbers", *numbers, "--operation", operation, "-q"]
    )
    assert (done.exit_code, done.stderr) == (0, ""), done.output
    return done.stdout.strip()


def result_document(runner: CliRunner, chain_id: str) -> tuple[str, Any]:
    """`result --json`: its text, and the document it parses to."""
    done = runner.invoke(app, ["result", chain_id, "--json"])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert (doc["status"], doc["error"]) == ("COMPLETED", None)
    return done.stdout, doc["result"]


@pytest.mark.parametrize(
    ("numbers", "operation", "expected"),
    [
        (["10", "10", "10"], "power", 10**100),
        (["9223372036854775807", "1"], "add", 2**63),
        (["-9223372036854775808", "1"], "subtract", -(2**63) - 1),
        (["3", "200"], "power", 3**200),
        (["5" * 4000, "4" * 4000], "add", FOUR_THOUSAND_NINES),  # 4,000 digits
        (["-" + "5" * 4000, "-" + "4" * 4000], "add", -FOUR_THOUSAND_NINES),
    ],
    ids=["10**100", "int64 max + 1", "int64 min - 1", "3**200", "4000 digits", "-4000 digits"],
)
def test_result_is_the_exact_json_integer(
    store_url: str, runner: CliRunner, numbers: list[str], operation: str, expected: int
) -> None:
    chain_id = submit(runner, *numbers, operation=operation)
    text, result = result_document(runner, chain_id)
    assert type(result) is int and result == expected
    assert f'"result": {expected},' in text  # written as an integer literal, digit for digit


def test_a_4000_digit_result_feeds_the_next_step_exactly(store_url: str, runner: CliRunner) -> None:
    chain_id = submit(runner, "5" * 4000, "4" * 4000, "-" + "9" * 3999)
    status = json.loads(runner.invoke(app, ["status", chain_id, "--json"]).stdout)
    steps = [step["result"] for step in status["steps"]]
    assert [type(r) for r in steps] == [int, int]
    assert steps == [FOUR_THOUSAND_NINES, FOUR_THOUSAND_NINES - int("9" * 3999)]
    numbers = status["config"]["numbers"]
    assert [type(n) for n in numbers] == [int, int, int]
    assert numbers == [int("5" * 4000), int("4" * 4000), -int("9" * 3999)]
    assert type(status["result"]) is int and status["result"] == 9 * 10**3999


def test_a_negative_literal_exponent_is_refused_at_submit(runner: CliRunner) -> None:
    done = runner.invoke(
        app, ["submit", "math_chain", "--numbers", "2", "-1", "--operation", "power"]
    )
    assert (done.exit_code, done.stdout) == (2, "")
    assert done.stderr == (
        "taskchain: error: math_chain config: power with negative exponent -1 (numbers[1]) has "
        "no integer result; exponents must be >= 0\n"
    )
    assert json.loads(runner.invoke(app, ["list", "--json"]).stdout) == []


def unusable(path: str) -> str:
    return f"sqlite:///{path}"


def test_a_store_path_under_a_file_is_exit_4_naming_the_file(
    runner: CliRunner, tmp_path: Path
) -> None:
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("keep me\n")
    for path in (blocker / "taskchain.db", blocker / "a" / "b" / "taskchain.db"):
        done = runner.invoke(app, ["--database-url", unusable(str(path)), "list"])
        assert (done.exit_code, done.stdout) == (4, "")
        assert done.stderr == (
            f"taskchain: error: store sqlite:///{path} is unavailable: cannot create folder "
            f"{path.parent}: {blocker} is a file, not a folder\n"
        )
    assert blocker.read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/proc/taskchain/taskchain.db", "cannot create folder /proc/taskchain: "),
        ("{tmp}", "{tmp} is a folder, not a database file"),
    ],
    ids=["under /proc", "a folder"],
)
def test_a_store_path_that_cannot_be_created_is_exit_4(
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    reason: str,
) -> None:
    path, reason = path.format(tmp=tmp_path), reason.format(tmp=tmp_path)
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", unusable(path))
    settings.configure()
    done = runner.invoke(app, ["submit", "math_chain", "--numbers", "1", "2"])
    assert (done.exit_code, done.stdout) == (4, "")
    prefix = f"taskchain: error: store sqlite:///{path} is unavailable: {reason}"
    assert done.stderr.startswith(prefix) and done.stderr.count("\n") == 1, done.stderr
