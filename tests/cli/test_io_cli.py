"""io_chain end to end through the CLI in embedded mode: real files, exit codes, JSON."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.cli import invoke, status, submit_quiet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def ws(workspace: Path) -> Path:
    return workspace


def submit(runner: CliRunner, *args: str, code: int = 0) -> str:
    return submit_quiet(runner, "io_chain", *args, code=code)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_read_and_checksum(runner: CliRunner, ws: Path) -> None:
    (ws / "a.txt").write_text("hello\n")
    chain_id = submit(runner, "--targets", "a.txt", "--ops", "read,checksum")
    doc = status(runner, chain_id)
    assert doc["status"] == "COMPLETED" and doc["type"] == "io_chain"
    assert doc["config"] == {"target_files": ["a.txt"], "file_operations": ["read", "checksum"]}
    assert [(s["name"], s["queue"], s["status"]) for s in doc["steps"]] == [
        ("read", "io", "COMPLETED"),
        ("checksum", "io", "COMPLETED"),
    ]
    assert doc["steps"][0]["result"]["files"] == [
        {"path": "a.txt", "size": 6, "binary": False, "text": "hello\n", "truncated": False}
    ]
    assert doc["result"] == {
        "op": "checksum",
        "targets": ["a.txt"],
        "files": [{"path": "a.txt", "size": 6, "sha256": sha(b"hello\n")}],
    }
    result = json.loads(invoke(runner, "result", chain_id, "--json").stdout)
    assert result["result"]["files"][0]["sha256"] == sha(b"hello\n")


def test_flags_run_in_the_order_typed(runner: CliRunner, ws: Path) -> None:
    chain_id = submit(
        runner, "--targets", "a.txt", "b.txt", "--write", "one, two", "--copy", "bk",
        "--ops", "stat", "--move", "arch", "--ops", "read",
    )  # fmt: skip
    doc = status(runner, chain_id)
    assert [s["name"] for s in doc["steps"]] == [
        "write",
        "copy → bk/",
        "stat",
        "move → arch/",
        "read",
    ]
    assert doc["status"] == "COMPLETED"
    assert sorted(p.relative_to(ws).as_posix() for p in ws.rglob("*") if p.is_file()) == [
        "a.txt", "arch/a.txt", "arch/b.txt", "b.txt",
    ]  # fmt: skip
    assert (ws / "arch/b.txt").read_text() == "one, two"
    assert doc["steps"][2]["result"]["targets"] == ["bk/a.txt", "bk/b.txt"]
    assert doc["result"]["targets"] == ["arch/a.txt", "arch/b.txt"]
    assert [f["text"] for f in doc["result"]["files"]] == ["one, two", "one, two"]


def test_config_with_parameters(runner: CliRunner, ws: Path) -> None:
    (ws / "d").mkdir()
    (ws / "d" / "x.txt").write_text("xx")
    config = {"target_files": ["d"], "file_operations": ["stat", "list"]}
    chain_id = submit(runner, "--config", json.dumps(config))
    listing = status(runner, chain_id)["result"]["files"][0]
    assert listing["entries"] == [{"name": "x.txt", "type": "file", "size": 2}]


def test_missing_file_fails_the_chain_with_the_reason(runner: CliRunner, ws: Path) -> None:
    chain_id = submit(runner, "--targets", "nope.txt", "--ops", "checksum,stat", code=1)
    doc = status(runner, chain_id)
    assert doc["status"] == "FAILED"
    assert doc["error"] == "step 1 (checksum) failed: checksum nope.txt: does not exist"
    assert [s["status"] for s in doc["steps"]] == ["FAILED", "SKIPPED"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--targets", "../escape.txt", "--write", "x"], "path '../escape.txt' resolves outside"),
        (["--targets", "/etc/passwd", "--ops", "read"], "path '/etc/passwd' resolves outside"),
        (["--targets", "leak", "--ops", "read"], "path 'leak' resolves outside"),
        (["--targets", "door/new.txt", "--write", "x"], "resolves outside"),
        (["--targets", "a.txt", "--copy", "../out"], "file_operations.0 (copy → ../out/)"),
        (["--targets", "a.txt", "--move", "door"], "resolves outside"),
        (["--targets", "a.txt", "--ops", "read,frob"], "unknown operation 'frob'"),
        (["--targets", "a.txt", "--ops", "write"], "write needs 'content'"),
        (["--targets", "a.txt", "--ops", "delete,read"], "read follows delete"),
        (["--targets", ".taskchain/x", "--write", "x"], ".taskchain/ is read-only"),
        (["--ops", "read"], "target_files: Field required"),
        (["--targets", "a.txt"], "file_operations: Field required"),
        (
            ["--targets", "a.txt", "--ops", "read", "--numbers", "1"],
            "unexpected argument '--numbers'",
        ),
    ],
)
def test_bad_input_exits_2_and_records_nothing(
    runner: CliRunner, ws: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws / "a.txt").write_text("a")
    (ws / "leak").symlink_to(outside / "secret.txt")
    (ws / "door").symlink_to(outside, target_is_directory=True)
    result = invoke(runner, "submit", "io_chain", *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert json.loads(invoke(runner, "list", "--json").stdout) == []
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape.txt").exists()


def test_submit_help_documents_io_flags(runner: CliRunner) -> None:
    text = " ".join(invoke(runner, "submit", "--help").stdout.split())
    for flag in ("--targets", "--ops", "--write TEXT", "--copy DIR", "--move DIR"):
        assert flag in text


def test_example_json_runs(runner: CliRunner, ws: Path) -> None:
    chain_id = submit(runner, "--config-file", str(EXAMPLES / "io_chain.json"))
    doc = status(runner, chain_id)
    assert doc["status"] == "COMPLETED", doc["error"]
    body = b"Buy milk.\nShip taskchain.\n"
    assert sorted(p.relative_to(ws).as_posix() for p in ws.rglob("*") if p.is_file()) == [
        "io_demo/archive/notes.txt", "io_demo/archive/todo.txt",
        "io_demo/backup/notes.txt", "io_demo/backup/todo.txt",
    ]  # fmt: skip
    assert (ws / "io_demo/backup/todo.txt").read_bytes() == body
    assert doc["result"]["targets"] == ["io_demo/backup/notes.txt", "io_demo/backup/todo.txt"]
    assert [f["sha256"] for f in doc["result"]["files"]] == [sha(body)] * 2
    # Run again: writes replace, copies overwrite, moves replace the archived files.
    assert (
        status(runner, submit(runner, "--config-file", str(EXAMPLES / "io_chain.json")))["status"]
        == "COMPLETED"
    )


def test_example_yaml_runs(runner: CliRunner, ws: Path) -> None:
    shutil.copytree(EXAMPLES / "io_sample", ws / "examples" / "io_sample")
    chain_id = submit(runner, "--config-file", str(EXAMPLES / "io_chain.yaml"))
    doc = status(runner, chain_id)
    assert doc["status"] == "COMPLETED", doc["error"]
    originals = [
        (ws / "examples/io_sample" / n).read_bytes() for n in ("greeting.txt", "cities.csv")
    ]
    assert doc["result"]["targets"] == ["io_backup/greeting.txt", "io_backup/cities.csv"]
    assert [f["sha256"] for f in doc["result"]["files"]] == [sha(b) for b in originals]
    assert doc["steps"][1]["result"]["files"][1]["text"] == originals[1].decode()
