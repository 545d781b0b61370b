"""The CLI through CliRunner in embedded mode: exact output and exit codes."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain.cli import app


def invoke(runner: CliRunner, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=input)


def submit_q(runner: CliRunner, *args: str) -> str:
    result = invoke(runner, "submit", "math_chain", *args, "-q")
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def listed(runner: CliRunner) -> list[dict]:
    result = invoke(runner, "list", "--json", "--limit", "0")
    assert result.exit_code == 0
    return json.loads(result.stdout)


def test_submit_numbers_as_typed(runner: CliRunner) -> None:
    result = invoke(runner, "submit", "math_chain", "--numbers", "1", "2", "3")
    assert result.exit_code == 0, result.output
    chain_id = result.stdout.strip()
    assert len(chain_id) == 32 and result.stdout == f"{chain_id}\n"
    # A step may be seen RUNNING too, depending on when the store is polled.
    lines = [line for line in result.stderr.splitlines() if not line.endswith(" RUNNING")]
    assert lines[0] == f"submitted math_chain chain {chain_id}"
    assert lines[1:3] == [
        f"{chain_id[:12]} step 1/2 add 2 COMPLETED 3",
        f"{chain_id[:12]} step 2/2 add 3 COMPLETED 6",
    ]
    assert len(lines) == 4
    assert lines[-1].startswith(f"{chain_id} math_chain COMPLETED in ")
    assert lines[-1].endswith(": result 6")


def test_quiet_prints_only_the_id(runner: CliRunner) -> None:
    result = invoke(runner, "submit", "math_chain", "--numbers", "1", "2", "3", "-q")
    assert result.exit_code == 0
    assert result.stderr == ""
    (chain_id,) = result.stdout.split()
    assert invoke(runner, "result", chain_id).stdout == "6\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--numbers", "-1", "-2", "-3"], -6),
        (["--numbers", "1", "--numbers", "2"], 3),
        (["--numbers", "2", "10", "--operation", "power"], 1024),
        (["--numbers", "3", "--iterations", "4", "--operation", "*"], 81),
        (["--config", '{"numbers": [1, 2, 3], "operation": "multiply"}'], 6),
        (["--config", "numbers: [4, 5]"], 9),
        (["--config", '{"numbers": [1, 2]}', "--numbers", "5", "5"], 10),
    ],
)
def test_submit_forms(runner: CliRunner, args: list[str], expected: int) -> None:
    chain_id = submit_q(runner, *args)
    result = invoke(runner, "result", chain_id, "--json")
    assert json.loads(result.stdout) == {
        "schema_version": 1, "id": chain_id, "status": "COMPLETED", "result": expected, "error": None,
    }  # fmt: skip


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_config_file(runner: CliRunner, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"chain{suffix}"
    body = {"numbers": [2, 3, 4], "operation": "multiply", "iterations": 2}
    path.write_text(
        json.dumps(body)
        if suffix == ".json"
        else "numbers: [2, 3, 4]\noperation: multiply\niterations: 2\n"
    )
    chain_id = submit_q(runner, "--config-file", str(path), "--description", "from a file")
    status = json.loads(invoke(runner, "status", chain_id, "--json").stdout)
    assert status["result"] == 24 * 24
    assert status["description"] == "from a file"
    assert status["config"] == body
    assert len(status["steps"]) == 5


@pytest.mark.usefixtures("store_url")  # SQLite and PostgreSQL
def test_failed_chain_exits_1_with_reason(runner: CliRunner) -> None:
    result = invoke(
        runner, "submit", "math_chain", "--numbers", "5", "0", "1", "--operation", "divide", "-q"
    )
    assert result.exit_code == 1
    chain_id = result.stdout.strip()
    assert result.stdout == f"{chain_id}\n"
    # -q: the id, and the failure as an error line: the one form every error takes.
    assert result.stderr == (
        f"taskchain: error: chain {chain_id} FAILED: "
        "step 1 (divide 0) failed: division by zero (5 // 0)\n"
    )
    status = json.loads(invoke(runner, "status", chain_id, "--json").stdout)
    assert [s["status"] for s in status["steps"]] == ["FAILED", "SKIPPED"]
    assert status["error"] == "step 1 (divide 0) failed: division by zero (5 // 0)"
    result = invoke(runner, "result", chain_id)
    assert (result.exit_code, result.stdout) == (1, "")
    assert "division by zero" in result.stderr


@pytest.mark.usefixtures("store_url")  # SQLite and PostgreSQL
def test_status_json_shape(runner: CliRunner) -> None:
    chain_id = submit_q(runner, "--numbers", "1", "2", "3")
    doc = json.loads(invoke(runner, "status", chain_id[:8], "--json").stdout)
    for key in ("id", "type", "description", "status", "created_at", "started_at", "finished_at",
                "config", "result", "error", "steps"):  # fmt: skip
        assert key in doc
    assert doc["created_at"].endswith("Z") and doc["finished_at"].endswith("Z")
    step = doc["steps"][1]
    assert {k: step[k] for k in ("index", "name", "queue", "status", "attempts", "result", "error")} == {
        "index": 1, "name": "add 3", "queue": "math", "status": "COMPLETED", "attempts": 1,
        "result": 6, "error": None,
    }  # fmt: skip


def test_status_table(runner: CliRunner) -> None:
    chain_id = submit_q(runner, "--numbers", "1", "2", "3", "--operation", "multiply")
    text = invoke(runner, "status", chain_id).stdout
    assert f"chain {chain_id}  math_chain  COMPLETED" in text
    rows = [line.split() for line in text.splitlines() if line.strip().startswith(("1 ", "2 "))]
    assert [r[:5] for r in rows] == [["1", "multiply", "2", "math", "COMPLETED"],
                                     ["2", "multiply", "3", "math", "COMPLETED"]]  # fmt: skip
    assert text.rstrip().endswith("result: 6")


@pytest.mark.usefixtures("store_url")  # SQLite and PostgreSQL
def test_list_and_filters(runner: CliRunner) -> None:
    ok = submit_q(runner, "--numbers", "1", "2")
    bad = invoke(
        runner, "submit", "math_chain", "--numbers", "1", "0", "--operation", "mod", "-q"
    ).stdout.strip()
    assert [c["id"] for c in listed(runner)] == [bad, ok]
    only_failed = json.loads(invoke(runner, "list", "--status", "failed", "--json").stdout)
    assert [c["id"] for c in only_failed] == [bad]
    assert json.loads(invoke(runner, "list", "--type", "data_chain", "--json").stdout) == []
    assert (
        json.loads(invoke(runner, "list", "--since", "1h", "--limit", "1", "--json").stdout)[0][
            "id"
        ]
        == bad
    )
    assert json.loads(invoke(runner, "list", "--until", "1h", "--json").stdout) == []
    table = invoke(runner, "list").stdout
    assert ok in table and bad in table and "FAILED" in table


@pytest.mark.usefixtures("store_url")  # SQLite and PostgreSQL
def test_stats(runner: CliRunner) -> None:
    submit_q(runner, "--numbers", "1", "2")
    submit_q(runner, "--numbers", "3", "4")
    invoke(runner, "submit", "math_chain", "--numbers", "1", "0", "--operation", "/", "-q")
    doc = json.loads(invoke(runner, "stats", "--json").stdout)
    assert doc["total"] == 3
    assert doc["by_status"] == {
        "PENDING": 0,
        "RUNNING": 0,
        "COMPLETED": 2,
        "FAILED": 1,
        "CANCELLED": 0,
    }
    assert doc["by_type"]["math_chain"]["total"] == 3
    assert doc["durations"]["count"] == 3
    text = invoke(runner, "stats").stdout
    assert "math_chain" in text and "total" in text


@pytest.mark.usefixtures("store_url")  # SQLite and PostgreSQL
def test_delete(runner: CliRunner) -> None:
    first = submit_q(runner, "--numbers", "1", "2")
    second = submit_q(runner, "--numbers", "1", "3")
    refused = invoke(runner, "delete", first)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    result = invoke(runner, "delete", first[:10], second, "--yes")
    assert result.exit_code == 0
    assert result.stderr == f"deleted {first}\ndeleted {second}\n"
    assert listed(runner) == []
    assert invoke(runner, "delete", first, "--yes").exit_code == 3


@pytest.mark.usefixtures("store_url")  # SQLite and PostgreSQL
def test_idempotent_submit_with_id(runner: CliRunner) -> None:
    first = invoke(runner, "submit", "math_chain", "--numbers", "1", "2", "--id", "build-42")
    again = invoke(runner, "submit", "math_chain", "--numbers", "1", "2", "--id", "build-42")
    assert first.stdout == again.stdout == "build-42\n"
    assert "already exists" in again.stderr
    assert [c["id"] for c in listed(runner)] == ["build-42"]


@pytest.mark.usefixtures("store_url")  # SQLite and PostgreSQL
def test_id_prefix_errors(runner: CliRunner) -> None:
    submit_q(runner, "--numbers", "1", "2", "--id", "same-1")
    submit_q(runner, "--numbers", "1", "2", "--id", "same-2")
    ambiguous = invoke(runner, "status", "same")
    assert ambiguous.exit_code == 3
    assert (
        ambiguous.stderr
        == "taskchain: error: id prefix 'same' is ambiguous: it matches same-1, same-2\n"
    )
    missing = invoke(runner, "result", "nope")
    assert (missing.exit_code, missing.stdout) == (3, "")
    assert missing.stderr == "taskchain: error: no chain matches id 'nope'\n"


def test_watch_finished_chain_exits_at_once_with_its_code(runner: CliRunner) -> None:
    ok = submit_q(runner, "--numbers", "1", "2")
    result = invoke(runner, "watch", ok)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1].endswith(
        "COMPLETED in " + result.stdout.split(" in ")[-1].split(":")[0] + ": result 3"
    )


def test_worker_in_embedded_mode_explains(runner: CliRunner) -> None:
    result = invoke(runner, "worker")
    assert result.exit_code == 2
    assert "no broker configured" in result.stderr and "TASKCHAIN_BROKER_URL" in result.stderr


def test_info_masks_secrets(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", "postgresql://app:hunter2@127.0.0.1:1/none")
    result = invoke(runner, "info", "--json")
    doc = json.loads(result.stdout)
    assert "hunter2" not in result.output
    assert doc["database_url"] == "postgresql://app:***@127.0.0.1:1/none"
    assert doc["mode"] == "embedded"
    assert doc["store"].startswith("unavailable")


def test_broker_down_is_exit_4_fast_and_records_nothing(runner: CliRunner) -> None:
    start = time.monotonic()
    result = invoke(
        runner,
        "--broker-url",
        "redis://:pw@127.0.0.1:1/0",
        "submit",
        "math_chain",
        "--numbers",
        "1",
        "2",
    )
    elapsed = time.monotonic() - start
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.startswith(
        "taskchain: error: broker redis://:***@127.0.0.1:1/0 is unreachable"
    )
    assert "pw@" not in result.stderr
    assert elapsed < 5, elapsed
    assert listed(runner) == []


def test_version_and_help_need_no_services(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", "postgresql://x@127.0.0.1:1/none")
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", "redis://127.0.0.1:1/0")
    assert invoke(runner, "--version").stdout == "taskchain 0.1.0\n"
    assert invoke(runner, "--help").exit_code == 0


def test_submit_help_documents_math_semantics(runner: CliRunner) -> None:
    text = " ".join(invoke(runner, "submit", "--help").stdout.split())
    assert "NUMBERS repeated ITERATIONS times" in text
    assert "floor division" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "nope_chain"], "unknown chain type 'nope_chain'"),
        (["submit", "math_chain", "--numbers", "1", "x"], "numbers.1: 'x' is not an integer"),
        (["submit", "math_chain", "--numbers", "1", "2", "--operation", "root"], "operation"),
        (
            ["submit", "math_chain", "--numbers", "1", "--iterations", "many"],
            "'many' is not an integer",
        ),
        (
            ["submit", "math_chain", "--numbers", "1", "2", "--bogus"],
            "unexpected argument '--bogus'",
        ),
        (["submit", "math_chain", "--config", "{not json"], "invalid JSON or YAML"),
        (["submit", "math_chain", "--config", "[1, 2]"], "expected a mapping"),
        (["submit", "math_chain", "--config-file", "/nonexistent.json"], "does not exist"),
        (
            [
                "submit",
                "math_chain",
                "--numbers",
                "10",
                "10",
                "10",
                "10",
                "10",
                "--operation",
                "power",
            ],
            "would exceed",
        ),
        (["submit", "math_chain", "--numbers", "1", "2", "--id", "../x"], "--id '../x'"),
        (
            ["submit", "math_chain", "--numbers", "1", "2", "--wait", "--timeout", "soon"],
            "not a duration",
        ),
        (["list", "--status", "DONE"], "unknown status 'DONE'"),
        (["list", "--limit", "-1"], "must be 0 or more"),
        (["list", "--since", "last tuesday"], "neither an ISO-8601 time"),
        (["status", ""], "required"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_records_nothing(
    runner: CliRunner, args: list[str], message: str
) -> None:
    result = invoke(runner, *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert listed(runner) == []


def test_every_setting_is_also_a_global_option(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(
        runner, "--workspace", str(tmp_path), "--task-time-limit", "60", "--step-lease", "7",
        "--broker-timeout", "1.5", "--store-timeout", "2", "--redispatch-after", "30",
        "--plugins", "tests.support.chains", "info", "--json",
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert (doc["workspace"], doc["task_time_limit"], doc["step_lease"]) == (str(tmp_path), 60, 7)
    probe = invoke(
        runner,
        "--plugins",
        "tests.support.chains",
        "submit",
        "probe_chain",
        "--config",
        '{"steps": [{}, {}]}',
        "-q",
    )
    assert probe.exit_code == 0, probe.output
    assert invoke(runner, "result", probe.stdout.strip()).stdout == "2\n"


def test_plain_lines_summarize_results_and_json_keeps_them_whole(
    runner: CliRunner, workspace: Path
) -> None:
    for name in ("a.txt", "b.txt"):
        (workspace / name).write_text("x" * 600)
    result = invoke(
        runner, "submit", "io_chain", "--targets", "a.txt", "b.txt", "--ops", "checksum,stat",
        "--copy", "backup",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    chain_id = result.stdout.strip()
    lines = [line for line in result.stderr.splitlines() if not line.endswith(" RUNNING")]
    short = chain_id[:12]
    assert lines[1:4] == [
        f"{short} step 1/3 checksum COMPLETED checksum: 2 files, 1.2 KB",
        f"{short} step 2/3 stat COMPLETED stat: 2 files, 1.2 KB",
        f"{short} step 3/3 copy → backup/ COMPLETED copy: 2 files, 1.2 KB",
    ]
    assert re.fullmatch(rf"{chain_id} io_chain COMPLETED in \S+: result copy: 2 files, 1\.2 KB",
                        lines[4])  # fmt: skip
    assert len(lines) == 5 and max(len(line) for line in lines) < 100
    doc = json.loads(invoke(runner, "status", chain_id, "--json").stdout)
    sha = hashlib.sha256(b"x" * 600).hexdigest()
    assert doc["steps"][0]["result"] == {
        "op": "checksum", "targets": ["a.txt", "b.txt"],
        "files": [{"path": "a.txt", "size": 600, "sha256": sha},
                  {"path": "b.txt", "size": 600, "sha256": sha}],
    }  # fmt: skip
    assert doc["steps"][2]["result"]["targets"] == ["backup/a.txt", "backup/b.txt"]
    assert doc["result"] == doc["steps"][2]["result"]
    full = json.loads(invoke(runner, "result", chain_id, "--json").stdout)["result"]
    assert [f["to"] for f in full["files"]] == ["backup/a.txt", "backup/b.txt"]
