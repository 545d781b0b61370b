"""Every command documents itself: a one-line summary, an example, conventional usage lines
(in the spirit of sqlite-utils' test_docs.py, which fails when a command goes undocumented)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from taskchain.cli import app

COMMANDS: dict[str, Any] = get_command(app).commands  # type: ignore[attr-defined]


def help_of(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_commands_of_the_contract_are_registered() -> None:
    assert set(COMMANDS) >= {"submit", "status", "result", "list", "stats", "delete", "cancel",
                             "retry", "watch", "worker", "info"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_a_one_line_summary(name: str) -> None:
    docstring = COMMANDS[name].help or ""
    first_paragraph = docstring.strip().split("\n\n")[0]
    assert first_paragraph, f"{name} has no help"
    assert "\n" not in first_paragraph, f"{name}: the summary spans lines: {first_paragraph!r}"
    assert first_paragraph.endswith("."), name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_has_an_example_of_itself(runner: CliRunner, name: str) -> None:
    text = help_of(runner, name)
    example = re.search(r"Examples?:\s+(.*)", text, re.S)
    assert example, f"{name} --help has no example"
    assert re.search(rf"\btaskchain {name}\b", example.group(1)), (name, example.group(1))


def test_the_command_list_shows_each_summary_whole(runner: CliRunner) -> None:
    text = help_of(runner)
    listing = " ".join(text.split("Commands:", 1)[1].split())
    for name, command in COMMANDS.items():
        summary = " ".join((command.help or "").strip().split("\n\n")[0].split())
        assert f"{name} {summary}" in listing, name
    assert "..." not in listing


def test_usage_lines_are_conventional(runner: CliRunner) -> None:
    # Arguments as Unix manuals write them: TYPE required, [ID] optional, ID... repeatable;
    # no braces, and the program's own name however it was started.
    usage = {name: help_of(runner, name).splitlines()[0] for name in COMMANDS}
    assert usage["submit"] == "Usage: taskchain submit [OPTIONS] [TYPE]"  # TYPE, or --batch FILE
    assert usage["delete"] == "Usage: taskchain delete [OPTIONS] ID..."
    assert usage["watch"] == "Usage: taskchain watch [OPTIONS] [ID]"
    assert usage["status"] == "Usage: taskchain status [OPTIONS] ID"
    assert usage["list"] == "Usage: taskchain list [OPTIONS]"
    assert help_of(runner).splitlines()[0] == "Usage: taskchain [OPTIONS] COMMAND [ARGS]..."
    for line in usage.values():
        assert not set("{}") & set(line), line
        assert "...}" not in line and "......" not in line, line


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["delete"], "Missing argument 'ID...' (see 'taskchain delete --help')"),
        (["frobnicate"], "No such command 'frobnicate' (see 'taskchain --help')"),
        (["--colour", "list"], "No such option: --colour (see 'taskchain --help')"),
        (["list", "--limit", "ten"], "Invalid value for '--limit' / '-n': Input should be a valid "
         "integer, unable to parse string as an integer (see 'taskchain list --help')"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_taskchain_error_line(
    runner: CliRunner, args: list[str], line: str
) -> None:
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"taskchain: error: {line}\n"


def test_no_arguments_still_shows_the_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "Usage: taskchain [OPTIONS] COMMAND [ARGS]..." in result.output
    assert "Commands:" in result.output
