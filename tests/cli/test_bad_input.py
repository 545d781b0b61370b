"""Hostile and bad input across every command and chain type: a one-line error, the contract's
exit code, no traceback, nothing on stdout, and the store exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain.cli import app

OUTSIDE = "/etc/passwd"

CASES: list[tuple[str, list[str], int, str]] = [
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
        "a file name given to --config",
        ["submit", "math_chain", "--config", "bad.json"],
        2,
        "--config: expected a mapping of settings, got str ('bad.json' is a file: read it "
        "with --config-file bad.json)",
    ),
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
    (
        "missing csv",
        ["submit", "data_chain", "--input", "nope.csv", "--steps", "clean"],
        2,
        "data_input 'nope.csv' does not exist",
    ),
    (
        "empty csv",
        ["submit", "data_chain", "--input", "empty.csv", "--steps", "clean"],
        2,
        "data_input 'empty.csv' is empty",
    ),
    (
        "binary csv",
        ["submit", "data_chain", "--input", "binary.csv", "--steps", "analyze"],
        2,
        "data_input 'binary.csv' looks binary",
    ),
    (
        "csv escapes with ..",
        ["submit", "data_chain", "--input", "../outside.csv", "--steps", "clean"],
        2,
        "data_input: path '../outside.csv' resolves outside the workspace",
    ),
    (
        "csv absolute elsewhere",
        ["submit", "data_chain", "--input", OUTSIDE, "--steps", "clean"],
        2,
        f"data_input: path '{OUTSIDE}' resolves outside the workspace",
    ),
    (
        "csv symlink out",
        ["submit", "data_chain", "--input", "link-out", "--steps", "clean"],
        2,
        "data_input: path 'link-out' resolves outside the workspace",
    ),
    (
        "csv in a symlinked folder out",
        ["submit", "data_chain", "--input", "dir-out/outside.csv", "--steps", "clean"],
        2,
        "data_input: path 'dir-out/outside.csv' resolves outside the workspace",
    ),
    (
        "unknown data step",
        ["submit", "data_chain", "--input", "good.csv", "--steps", "clean,explode"],
        2,
        "processing_steps: unknown step 'explode'",
    ),
    # io_chain
    (
        "io target escapes",
        ["submit", "io_chain", "--targets", "../x.txt", "--ops", "read"],
        2,
        "target_files.0: path '../x.txt' resolves outside the workspace",
    ),
    (
        "io target absolute",
        ["submit", "io_chain", "--targets", OUTSIDE, "--ops", "read"],
        2,
        f"target_files.0: path '{OUTSIDE}' resolves outside the workspace",
    ),
    (
        "io symlink out",
        ["submit", "io_chain", "--targets", "link-out", "--ops", "read"],
        2,
        "target_files.0: path 'link-out' resolves outside the workspace",
    ),
    (
        "io target in a symlinked folder out",
        ["submit", "io_chain", "--targets", "dir-out/new.txt", "--ops", "read"],
        2,
        "target_files.0: path 'dir-out/new.txt' resolves outside the workspace",
    ),
    (
        "io unknown op",
        ["submit", "io_chain", "--targets", "a.txt", "--ops", "shred"],
        2,
        "file_operations.0: unknown operation 'shred'",
    ),
    (
        "io copy escapes",
        [
            "submit",
            "io_chain",
            "--config",
            '{"target_files": ["a.txt"], "file_operations": [{"op": "copy", "to": "../../tmp"}]}',
        ],
        2,
        "path '../../tmp' resolves outside the workspace",
    ),
    (
        "io move into a symlinked folder out",
        [
            "submit",
            "io_chain",
            "--config",
            '{"target_files": ["a.txt"], "file_operations": [{"op": "move", "to": "dir-out"}]}',
        ],
        2,
        "path 'dir-out' resolves outside the workspace",
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
        "file_operations.0: write needs 'content'",
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
    (
        "bad time limit",
        ["--task-time-limit", "0", "list"],
        2,
        "invalid setting --task-time-limit: Input should be greater than or equal to 1 (got 0)",
    ),
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


SUBMIT = ["submit", "math_chain", "--numbers", "1", "2"]
CLOSED = "127.0.0.1:6599"  # nothing listens there
SECRET = "hunter2"  # a password no message may show

# Every setting, as an environment variable and as a global option: wrong types, ranges,
# impossible paths, unreachable hosts. (name, environment, arguments, exit code, message)
SETTINGS_CASES: list[tuple[str, dict[str, str], list[str], int, str]] = [
    (
        "broker scheme (env)",
        {"TASKCHAIN_BROKER_URL": "ftp://127.0.0.1/"},
        SUBMIT,
        2,
        "invalid setting TASKCHAIN_BROKER_URL: broker URL 'ftp://127.0.0.1/' must start with",
    ),
    (
        "broker without scheme (env)",
        {"TASKCHAIN_BROKER_URL": "redis.internal:6379"},
        SUBMIT,
        2,
        "invalid setting TASKCHAIN_BROKER_URL: broker URL 'redis.internal:6379' must start with",
    ),
    (
        "broker port not a number (flag)",
        {},
        ["--broker-url", f"redis://:{SECRET}@127.0.0.1:sixty/0", *SUBMIT],
        2,
        "invalid setting --broker-url: broker URL 'redis://:***@127.0.0.1:sixty/0': Port",
    ),
    (
        "broker unreachable (flag)",
        {},
        ["--broker-url", f"redis://:{SECRET}@{CLOSED}/0", "--broker-timeout", "1", *SUBMIT],
        4,
        f"broker redis://:***@{CLOSED}/0 is unreachable: Error 111",
    ),
    (
        "result backend scheme (env)",
        {"TASKCHAIN_RESULT_BACKEND": "foo://x"},
        SUBMIT,
        2,
        "invalid setting TASKCHAIN_RESULT_BACKEND: result backend 'foo://x' must start with",
    ),
    (
        "result backend unsupported (flag)",
        {},
        ["--result-backend", f"mongodb://u:{SECRET}@db/x", *SUBMIT],
        2,
        "invalid setting --result-backend: result backend 'mongodb://u:***@db/x' must start",
    ),
    (
        "result backend db+ without driver (env)",
        {"TASKCHAIN_RESULT_BACKEND": "db+nosuchdb://x/y"},
        SUBMIT,
        2,
        "result backend 'db+nosuchdb://x/y': driver not installed",
    ),
    (
        "database url (env)",
        {"TASKCHAIN_DATABASE_URL": "not a url"},
        ["list"],
        2,
        "invalid setting TASKCHAIN_DATABASE_URL: database URL 'not a url' is not a valid",
    ),
    (
        "database driver (flag)",
        {},
        ["--database-url", f"nosuchdb://u:{SECRET}@h/y", *SUBMIT],
        2,
        "invalid setting --database-url: database URL 'nosuchdb://u:***@h/y': driver not installed",
    ),
    (
        "database unreachable (flag)",
        {},
        ["--database-url", f"postgresql+psycopg://u:{SECRET}@{CLOSED}/x", *SUBMIT],
        4,
        f"store postgresql+psycopg://u:***@{CLOSED}/x is unavailable",
    ),
    (
        "workspace missing (env)",
        {"TASKCHAIN_WORKSPACE": "/nonexistent/ws"},
        SUBMIT,
        2,
        "invalid setting TASKCHAIN_WORKSPACE: folder '/nonexistent/ws' does not exist",
    ),
    (
        "workspace is a file (flag)",
        {},
        ["--workspace", "a.txt", *SUBMIT],
        2,
        "invalid setting --workspace: ",  # the absolute path follows
    ),
    (
        "workspace under a file (env)",
        {"TASKCHAIN_WORKSPACE": "/dev/null/ws"},
        SUBMIT,
        2,
        "invalid setting TASKCHAIN_WORKSPACE: folder '/dev/null/ws' does not exist",
    ),
    (
        "time limit not a number (env)",
        {"TASKCHAIN_TASK_TIME_LIMIT": "abc"},
        SUBMIT,
        2,
        "invalid setting TASKCHAIN_TASK_TIME_LIMIT: Input should be a valid integer",
    ),
    (
        "time limit fraction (env)",
        {"TASKCHAIN_TASK_TIME_LIMIT": "1.5"},
        SUBMIT,
        2,
        "invalid setting TASKCHAIN_TASK_TIME_LIMIT: Input should be a valid integer",
    ),
    (
        "time limit too long (env)",
        {"TASKCHAIN_TASK_TIME_LIMIT": "99999999999"},
        SUBMIT,
        2,
        "TASKCHAIN_TASK_TIME_LIMIT: Input should be less than or equal to 604800",
    ),
    (
        "time limit not a number (flag)",
        {},
        ["--task-time-limit", "soon", *SUBMIT],
        2,
        "Invalid value for '--task-time-limit': Input should be a valid integer",
    ),
    (
        "time limit empty (flag)",
        {},
        ["--task-time-limit", "", *SUBMIT],
        2,
        "Invalid value for '--task-time-limit': Input should be a valid integer",
    ),
    (
        "step lease too short (env)",
        {"TASKCHAIN_STEP_LEASE": "2"},
        SUBMIT,
        2,
        "TASKCHAIN_STEP_LEASE: Input should be greater than or equal to 5 (got '2')",
    ),
    (
        "step lease negative (flag)",
        {},
        ["--step-lease", "-60", *SUBMIT],
        2,
        "--step-lease: Input should be greater than or equal to 5 (got -60)",
    ),
    (
        "redispatch nan (env)",
        {"TASKCHAIN_REDISPATCH_AFTER": "nan"},
        SUBMIT,
        2,
        "TASKCHAIN_REDISPATCH_AFTER: Input should be a finite number (got 'nan')",
    ),
    (
        "redispatch zero (flag)",
        {},
        ["--redispatch-after", "0", *SUBMIT],
        2,
        "--redispatch-after: Input should be greater than 0 (got 0.0)",
    ),
    (
        "broker timeout infinite (flag)",
        {},
        ["--broker-timeout", "inf", *SUBMIT],
        2,
        "--broker-timeout: Input should be a finite number (got inf)",
    ),
    (
        "broker timeout zero (env)",
        {"TASKCHAIN_BROKER_TIMEOUT": "0"},
        SUBMIT,
        2,
        "TASKCHAIN_BROKER_TIMEOUT: Input should be greater than 0 (got '0')",
    ),
    (
        "broker timeout huge (env)",
        {"TASKCHAIN_BROKER_TIMEOUT": "1e9"},
        SUBMIT,
        2,
        "TASKCHAIN_BROKER_TIMEOUT: Input should be less than or equal to 300 (got '1e9')",
    ),
    (
        "store timeout not a number (env)",
        {"TASKCHAIN_STORE_TIMEOUT": "ten"},
        SUBMIT,
        2,
        "TASKCHAIN_STORE_TIMEOUT: Input should be a valid number",
    ),
    (
        "store timeout negative (flag)",
        {},
        ["--store-timeout", "-1", *SUBMIT],
        2,
        "--store-timeout: Input should be greater than 0 (got -1.0)",
    ),
    (
        "plugin not a module name (env)",
        {"TASKCHAIN_PLUGINS": "my-plugin"},
        SUBMIT,
        2,
        "invalid setting TASKCHAIN_PLUGINS: 'my-plugin' is not a Python module name",
    ),
    (
        "plugin not importable (flag)",
        {},
        ["--plugins", "no_such_plugin_module", *SUBMIT],
        2,
        "cannot import 'no_such_plugin_module'",
    ),
    # config inputs over the size limit, refused before they are read
    (
        "config file of 1 GiB",
        {},
        ["submit", "math_chain", "--config-file", "huge.json"],
        2,
        "config file 'huge.json' is 1,024.0 MiB, over the 4 MiB limit for a config",
    ),
    (
        "config text over 4 MiB",
        {},
        ["submit", "math_chain", "--config", " " * (4 * 2**20 + 1)],
        2,
        "--config is over the 4 MiB limit for a config",
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
    (workspace / "dir-out").symlink_to(tmp_path, target_is_directory=True)
    with (workspace / "huge.json").open("wb") as huge:
        huge.truncate(2**30)  # sparse: a gigabyte that takes no disk and no time to make
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
    message: str,
) -> None:
    check_refused(runner, files, monkeypatch, args, code, message)


@pytest.mark.parametrize(
    ("name", "environment", "args", "code", "message"),
    SETTINGS_CASES,
    ids=[c[0] for c in SETTINGS_CASES],
)
def test_bad_setting(
    runner: CliRunner,
    files: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    environment: dict[str, str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    check_refused(runner, files, monkeypatch, args, code, message, environment)


def check_refused(
    runner: CliRunner,
    files: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    message: str,
    environment: dict[str, str] | None = None,
) -> None:
    """One line naming the problem (the case's own, not another), the code, empty stdout, no
    traceback, and the store exactly as it was."""
    monkeypatch.chdir(files)
    for chain_id in ("dup-1", "dup-2"):
        ok = runner.invoke(
            app, ["submit", "math_chain", "--numbers", "1", "2", "--id", chain_id, "-q"]
        )
        assert ok.exit_code == 0, ok.output
    before = snapshot(runner)
    result = runner.invoke(app, args, env=environment)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert message in result.stderr  # the case fails for its own reason, not another
    assert SECRET not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    if lines[0].startswith("taskchain: error:"):
        assert len(lines) == 1, result.stderr
    else:  # the option parser's own usage error: a usage hint, then one `Error:` line
        assert lines[-1].startswith("Error: "), result.stderr
    assert snapshot(runner) == before
    assert json.loads(before[0])[0]["id"] in ("dup-1", "dup-2")
