"""Hostile and bad input across every command and chain type: a one-line error, the contract's
exit code, no traceback, nothing on stdout, and the store exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain.cli import app

OUTSIDE = "/etc/passwd"

CASES: list[tuple[str, list[str], int, str | None]] = [
    # unknown things
    ("unknown type", ["submit", "nope_chain"], 2, "unknown chain type 'nope_chain'"),
    ("unknown command", ["frobnicate"], 2, "No such command"),
    ("unknown global option", ["--colour", "submit"], 2, "No such option: --colour"),
    # math_chain numbers
    (
        "number not a number",
        ["submit", "math_chain", "--numbers", "1", "two"],
        2,
        "numbers.1: 'two' is not an integer",
    ),
    (
        "float number",
        ["submit", "math_chain", "--numbers", "1", "2.5"],
        2,
        "'2.5' is not an integer",
    ),
    ("nan", ["submit", "math_chain", "--numbers", "nan", "1"], 2, "'nan' is not an integer"),
    ("inf", ["submit", "math_chain", "--numbers", "1", "inf"], 2, "'inf' is not an integer"),
    (
        "json NaN",
        ["submit", "math_chain", "--config", '{"numbers": [NaN, 1]}'],
        2,
        "nan is not an integer",
    ),
    (
        "json Infinity",
        ["submit", "math_chain", "--config", '{"numbers": [1, Infinity]}'],
        2,
        "inf is not an integer",
    ),
    (
        "bool number",
        ["submit", "math_chain", "--config", '{"numbers": [true, 1]}'],
        2,
        "True is not an integer",
    ),
    ("empty list", ["submit", "math_chain", "--config", '{"numbers": []}'], 2, "at least 1 item"),
    ("one operand", ["submit", "math_chain", "--numbers", "7"], 2, "need at least two operands"),
    ("no numbers", ["submit", "math_chain"], 2, "numbers: Field required"),
    (
        "numbers flag without values",
        ["submit", "math_chain", "--numbers"],
        2,
        "--numbers: expected at least one argument",
    ),
    (
        "huge number",
        ["submit", "math_chain", "--numbers", "9" * 5000, "1"],
        2,
        "limited to 4000 digits",
    ),
    (
        "unknown operation",
        ["submit", "math_chain", "--numbers", "1", "2", "--operation", "sqrt"],
        2,
        "operation: Input should be",
    ),
    (
        "iterations zero",
        ["submit", "math_chain", "--numbers", "1", "2", "--iterations", "0"],
        2,
        "greater than or equal to 1",
    ),
    (
        "iterations negative",
        ["submit", "math_chain", "--numbers", "1", "2", "--iterations", "-3"],
        2,
        "greater than or equal to 1",
    ),
    (
        "huge iterations",
        ["submit", "math_chain", "--numbers", "1", "2", "--iterations", "1000000"],
        2,
        "less than or equal to 1000",
    ),
    (
        "iterations not int",
        ["submit", "math_chain", "--numbers", "1", "--iterations", "2.5"],
        2,
        "'2.5' is not an integer",
    ),
    (
        "power tower",
        ["submit", "math_chain", "--numbers", "10", "10", "10", "10", "10", "--operation", "power"],
        2,
        "would exceed 4000 digits",
    ),
    (
        "big power",
        ["submit", "math_chain", "--numbers", "2", "100000", "--operation", "**"],
        2,
        "would exceed 4000 digits",
    ),
    (
        "unknown config key",
        ["submit", "math_chain", "--config", '{"numbers": [1, 2], "colour": 1}'],
        2,
        "colour: Extra inputs are not permitted",
    ),
    (
        "stray flag",
        ["submit", "math_chain", "--numbers", "1", "2", "--input", "x.csv"],
        2,
        "unexpected argument '--input'",
    ),
    # config text and files
    (
        "malformed json",
        ["submit", "math_chain", "--config", '{"numbers": [1, 2'],
        2,
        "invalid JSON or YAML",
    ),
    (
        "malformed yaml",
        ["submit", "math_chain", "--config", "numbers: [1, 2\n  bad: :"],
        2,
        "invalid JSON or YAML",
    ),
    (
        "config not a mapping",
        ["submit", "math_chain", "--config", "[1, 2]"],
        2,
        "expected a mapping",
    ),
    ("config scalar", ["submit", "math_chain", "--config", "42"], 2, "expected a mapping"),
    (
        "missing config file",
        ["submit", "math_chain", "--config-file", "missing.json"],
        2,
        "does not exist",
    ),
    ("config file is a dir", ["submit", "math_chain", "--config-file", "."], 2, "cannot be read"),
    (
        "binary config file",
        ["submit", "math_chain", "--config-file", "binary.json"],
        2,
        "not UTF-8 text",
    ),
    ("bad json file", ["submit", "math_chain", "--config-file", "bad.json"], 2, "invalid JSON"),
    ("bad yaml file", ["submit", "math_chain", "--config-file", "bad.yaml"], 2, "invalid YAML"),
    # submit options
    ("bad --id", ["submit", "math_chain", "--numbers", "1", "2", "--id", "a/b"], 2, "--id 'a/b'"),
    (
        "bad --timeout",
        ["submit", "math_chain", "--numbers", "1", "2", "--wait", "--timeout", "-1s"],
        2,
        "not a duration",
    ),
    # data_chain
    ("missing csv", ["submit", "data_chain", "--input", "nope.csv", "--steps", "clean"], 2, None),
    ("empty csv", ["submit", "data_chain", "--input", "empty.csv", "--steps", "clean"], 2, None),
    (
        "binary csv",
        ["submit", "data_chain", "--input", "binary.csv", "--steps", "analyze"],
        2,
        None,
    ),
    (
        "csv escapes with ..",
        ["submit", "data_chain", "--input", "../outside.csv", "--steps", "clean"],
        2,
        None,
    ),
    (
        "csv absolute elsewhere",
        ["submit", "data_chain", "--input", OUTSIDE, "--steps", "clean"],
        2,
        None,
    ),
    (
        "unknown data step",
        ["submit", "data_chain", "--input", "good.csv", "--steps", "clean,explode"],
        2,
        None,
    ),
    # io_chain
    (
        "io target escapes",
        ["submit", "io_chain", "--targets", "../x.txt", "--ops", "read"],
        2,
        None,
    ),
    ("io target absolute", ["submit", "io_chain", "--targets", OUTSIDE, "--ops", "read"], 2, None),
    ("io symlink out", ["submit", "io_chain", "--targets", "link-out", "--ops", "read"], 2, None),
    ("io unknown op", ["submit", "io_chain", "--targets", "a.txt", "--ops", "shred"], 2, None),
    (
        "io copy escapes",
        [
            "submit",
            "io_chain",
            "--config",
            '{"target_files": ["a.txt"], "file_operations": [{"op": "copy", "to": "../../tmp"}]}',
        ],
        2,
        None,
    ),
    (
        "io write without content",
        [
            "submit",
            "io_chain",
            "--config",
            '{"target_files": ["a.txt"], "file_operations": [{"op": "write"}]}',
        ],
        2,
        None,
    ),
    # read commands
    ("unknown id", ["status", "feedface"], 3, "no chain matches id 'feedface'"),
    ("ambiguous id", ["status", "dup-"], 3, "is ambiguous: it matches dup-1, dup-2"),
    ("empty id", ["result", ""], 2, "is required"),
    ("unknown id result", ["result", "nope", "--wait"], 3, "no chain matches"),
    ("unknown id delete", ["delete", "nope", "--yes"], 3, "no chain matches"),
    ("unknown id watch", ["watch", "nope"], 3, "no chain matches"),
    ("unknown status", ["list", "--status", "DONE"], 2, "unknown status 'DONE'"),
    ("negative limit", ["list", "--limit", "-5"], 2, "must be 0 or more"),
    ("negative offset", ["list", "--offset", "-1"], 2, "must be 0 or more"),
    ("limit not int", ["list", "--limit", "ten"], 2, "Invalid value for '--limit'"),
    ("bad since", ["list", "--since", "last week"], 2, "neither an ISO-8601 time"),
    ("bad until", ["list", "--until", "2026-13-45"], 2, "neither an ISO-8601 time"),
    (
        "bad result timeout",
        ["result", "dup-1", "--wait", "--timeout", "forever"],
        2,
        "not a duration",
    ),
    # settings and URLs
    ("bad database url", ["--database-url", "not a url", "list"], 2, "not a valid SQLAlchemy URL"),
    (
        "unknown database driver",
        ["--database-url", "nosuchdb://x/y", "list"],
        2,
        "driver not installed",
    ),
    ("bad time limit", ["--task-time-limit", "0", "list"], 2, "task_time_limit"),
    (
        "bad broker scheme",
        ["--broker-url", "ftp://127.0.0.1/", "submit", "math_chain", "--numbers", "1", "2"],
        2,
        "must start with one of",
    ),
    (
        "worker bad queue",
        ["--broker-url", "redis://127.0.0.1:1/0", "worker", "-Q", "gpu"],
        2,
        "unknown queue 'gpu'",
    ),
]


@pytest.fixture
def files(workspace: Path, tmp_path: Path) -> Path:
    (workspace / "binary.json").write_bytes(b"\x00\xff\xfe\x00" * 64)
    (workspace / "bad.json").write_text('{"numbers": [1, 2,]}')
    (workspace / "bad.yaml").write_text("numbers: [1, 2\n")
    (workspace / "empty.csv").write_text("")
    (workspace / "binary.csv").write_bytes(bytes(range(256)) * 8)
    (workspace / "good.csv").write_text("a,b\n1,2\n")
    (workspace / "a.txt").write_text("hello")
    (tmp_path / "outside.csv").write_text("a,b\n1,2\n")
    (workspace / "link-out").symlink_to(tmp_path / "outside.csv")
    return workspace


def snapshot(runner: CliRunner) -> tuple[str, str]:
    return (
        runner.invoke(app, ["list", "--json", "--limit", "0"]).stdout,
        runner.invoke(app, ["stats", "--json"]).stdout,
    )


def test_there_are_at_least_40_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("name", "args", "code", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    runner: CliRunner,
    files: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    args: list[str],
    code: int,
    message: str | None,
) -> None:
    monkeypatch.chdir(files)
    for chain_id in ("dup-1", "dup-2"):
        ok = runner.invoke(
            app, ["submit", "math_chain", "--numbers", "1", "2", "--id", chain_id, "-q"]
        )
        assert ok.exit_code == 0, ok.output
    before = snapshot(runner)
    result = runner.invoke(app, args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    if message is not None:
        assert message in result.stderr
    if name != "unknown type":  # the data and io cases must fail for their own reason
        assert "unknown chain type" not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    if lines[0].startswith("taskchain: error:"):
        assert len(lines) == 1, result.stderr
    else:  # the option parser's own usage error: a usage hint, then one `Error:` line
        assert lines[-1].startswith("Error: "), result.stderr
    assert snapshot(runner) == before
    assert json.loads(before[0])[0]["id"] in ("dup-1", "dup-2")
