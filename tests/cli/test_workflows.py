"""`taskchain run` embedded: fan-out and fan-in, a failure skipping what needs it, bad files
refused with nothing recorded, status/result/watch/retry on a workflow id, ids shared with
chains, and a store at schema 0003 upgraded to 0004."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from taskchain import settings
from taskchain.store import dispose_engines, get_engine, schema
from tests.support.cli import invoke

EXAMPLES = Path(__file__).parents[2] / "examples" / "workflows"

MIXED = """\
name: mixed
jobs:
  bad:
    type: math_chain
    config: {operation: divide, numbers: [1, 0]}
  after-bad:
    type: math_chain
    needs: [bad]
    config: {numbers: ["${{ jobs.bad.outputs.value }}", 1]}
  later:
    type: math_chain
    needs: [after-bad]
    config: {numbers: [1, 2]}
  good:
    type: math_chain
    config: {numbers: [2, 3]}
  after-good:
    type: math_chain
    needs: [good]
    config: {operation: multiply, numbers: ["${{ jobs.good.outputs.value }}", 10]}
"""


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def run_ok(runner: CliRunner, *args: str, code: int = 0) -> str:
    done = invoke(runner, "run", *args, "-q")
    assert done.exit_code == code, done.output
    return str(done.stdout.strip())


def status(runner: CliRunner, ref: str) -> dict[str, Any]:
    done = invoke(runner, "status", ref, "--json")
    assert done.exit_code == 0, done.output
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["name"]: job for job in doc["jobs"]}


def test_the_fanout_example_joins_twenty_jobs(runner: CliRunner) -> None:
    wf_id = run_ok(runner, str(EXAMPLES / "fanout.yaml"))
    doc = status(runner, wf_id)
    assert (doc["id"], doc["name"], doc["status"], doc["error"]) == (
        wf_id, "fanout", "COMPLETED", None)  # fmt: skip
    assert len(doc["jobs"]) == 21
    assert {j["status"] for j in doc["jobs"]} == {"COMPLETED"}
    assert jobs(doc)["total"]["needs"] == [f"square-{i:02d}" for i in range(1, 21)]
    # The join started only after the last of its needs had finished.
    last_square = max(j["finished_at"] for j in doc["jobs"] if j["name"] != "total")
    assert jobs(doc)["total"]["started_at"] >= last_square
    result = invoke(runner, "result", wf_id, "--json")
    assert result.exit_code == 0, result.output
    outputs = json.loads(result.stdout)["result"]
    assert outputs["total"] == {"value": sum(i * i for i in range(1, 21))}  # 2870
    assert outputs["square-07"] == {"value": 49}
    # Each job is a chain of its own, readable as one.
    total_chain = status(runner, jobs(doc)["total"]["chain_id"])
    assert (total_chain["type"], total_chain["result"]) == ("math_chain", 2870)


def test_a_failed_job_skips_what_needs_it_and_the_rest_finishes(
    runner: CliRunner, tmp_path: Path
) -> None:
    done = invoke(runner, "run", write(tmp_path, "mixed.yaml", MIXED))
    assert done.exit_code == 1, done.output
    wf_id = done.stdout.strip()
    doc = status(runner, wf_id)
    assert doc["status"] == "FAILED"
    assert doc["error"] == ("job 'bad' failed: step 1 (divide 0) failed: division by zero (1 // 0)")
    got = {name: (j["status"], j["error"]) for name, j in jobs(doc).items()}
    assert got == {
        "bad": ("FAILED", "step 1 (divide 0) failed: division by zero (1 // 0)"),
        "after-bad": ("SKIPPED", "job 'bad' failed"),
        "later": ("SKIPPED", "job 'bad' failed (needed through 'after-bad')"),
        "good": ("COMPLETED", None),
        "after-good": ("COMPLETED", None),
    }
    result = json.loads(invoke(runner, "result", wf_id, "--json").stdout)
    assert result["result"]["after-good"] == {"value": 50}
    assert result["result"]["bad"] is None
    # watch on a finished workflow: one plain line per job, then the summary; exit 1.
    watched = invoke(runner, "watch", wf_id[:8])
    assert watched.exit_code == 1
    lines = watched.stdout.splitlines()
    assert lines[1] == (
        f"{wf_id[:12]} job after-bad SKIPPED chain {jobs(doc)['after-bad']['chain_id'][:12]}: "
        "job 'bad' failed"
    )
    assert lines[-1].startswith(f"workflow {wf_id} mixed FAILED in ")
    assert lines[-1].endswith(
        "5 jobs (1 FAILED, 2 SKIPPED, 2 COMPLETED); job 'bad' failed: step 1 (divide 0) "
        "failed: division by zero (1 // 0)"
    )
    listed = json.loads(invoke(runner, "list", "--workflows", "--json").stdout)
    assert [(w["id"], w["status"], w["jobs"]) for w in listed] == [(wf_id, "FAILED", 5)]
    # A job is retried with its workflow: alone, what needs it would stay SKIPPED.
    bad = jobs(doc)["bad"]["chain_id"]
    refused = invoke(runner, "retry", bad)
    assert (refused.exit_code, refused.stdout) == (2, ""), refused.output
    assert refused.stderr == (
        f"taskchain: error: chain {bad} is job 'bad' of workflow {wf_id}: retry the workflow "
        f"(taskchain retry {wf_id[:12]}), which runs its failed, cancelled and skipped jobs "
        "again\n"
    )
    assert status(runner, bad)["status"] == "FAILED" and status(runner, wf_id) == doc


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("jobs:\n  a: {type: math_chain, config: {numbers: [1, 2]}, needs: [b]}\n",
         "job 'a': needs: no job is named 'b' (jobs: a)"),
        ("jobs:\n  a: {type: math_chain, config: {numbers: [1, 2]}, needs: [b]}\n"
         "  b: {type: math_chain, config: {numbers: [1, 2]}, needs: [a]}\n",
         "jobs a -> b -> a form a cycle"),
        ("jobs:\n  a: {type: nope_chain, config: {}}\n", "job 'a': type: unknown chain type"),
        ("jobs:\n  a: {type: math_chain, config: {numbers: [1, 2]}}\n"
         "  b: {type: math_chain, needs: [a], config: {numbers: ['${{ jobs.a.outputs.tbl }}']}}\n",
         "job 'b': config.numbers.0: "),
    ],
)  # fmt: skip
def test_a_bad_file_is_exit_2_in_one_line_and_records_nothing(
    runner: CliRunner, tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, "bad.yaml", text)
    done = invoke(runner, "run", path)
    assert (done.exit_code, done.stdout) == (2, ""), done.output
    assert done.stderr.startswith(f"taskchain: error: workflow {path}: ")
    assert message in done.stderr
    assert done.stderr.count("\n") == 1
    assert json.loads(invoke(runner, "list", "--workflows", "--json").stdout) == []
    assert json.loads(invoke(runner, "list", "--json").stdout) == []


def test_a_broker_that_is_down_is_exit_4_with_nothing_recorded(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Distributed `run` records the workflow, then publishes its first jobs: a broker that
    does not answer removes what it recorded, as `submit` does."""
    from tests.support.services import free_port

    monkeypatch.setenv("TASKCHAIN_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("TASKCHAIN_BROKER_TIMEOUT", "0.5")
    settings.configure()
    done = invoke(runner, "run", str(EXAMPLES / "fanout.yaml"))
    assert (done.exit_code, done.stdout) == (4, ""), done.output
    assert done.stderr.startswith("taskchain: error: ") and done.stderr.count("\n") == 1
    assert json.loads(invoke(runner, "list", "--workflows", "--json").stdout) == []
    assert json.loads(invoke(runner, "list", "--json").stdout) == []


def test_retry_reruns_failed_and_skipped_jobs_reusing_completed_ones(
    runner: CliRunner, tmp_path: Path, workspace: Path
) -> None:
    # `read` fails while later.txt is missing; `after` needs it.
    text = (
        "jobs:\n"
        "  count: {type: math_chain, config: {numbers: [1, 2]}}\n"
        "  read: {type: io_chain, needs: [count],\n"
        "         config: {file_operations: [read], target_files: [later.txt]}}\n"
        "  after: {type: math_chain, needs: [read, count],\n"
        "          config: {numbers: ['${{ jobs.count.outputs.value }}', 4]}}\n"
    )
    wf_id = run_ok(runner, write(tmp_path, "retry.yaml", text), "--id", "wf-retry", code=1)
    assert wf_id == "wf-retry"
    before = jobs(status(runner, wf_id))
    assert before["read"]["status"] == "FAILED"
    assert before["read"]["error"] == "step 1 (read) failed: read later.txt: does not exist"
    assert before["after"] == {**before["after"], "status": "SKIPPED",
                               "error": "job 'read' failed"}  # fmt: skip
    (workspace / "later.txt").write_text("hello")
    again = invoke(runner, "retry", "wf-retry", "-q")
    assert again.exit_code == 0, again.output
    after = jobs(status(runner, wf_id))
    assert {n: j["status"] for n, j in after.items()} == dict.fromkeys(after, "COMPLETED")
    assert after["count"] == before["count"]  # not run again: same chain, same times
    out = json.loads(invoke(runner, "result", wf_id, "--json").stdout)["result"]
    assert out["after"] == {"value": 7}
    refused = invoke(runner, "retry", "wf-retry")
    assert (refused.exit_code, refused.stderr) == (2, (
        "taskchain: error: workflow wf-retry is COMPLETED: only FAILED, CANCELLED or "
        "orphaned workflows can be retried\n"))  # fmt: skip
    # Running the same --id again returns the workflow it made (idempotent).
    assert run_ok(runner, write(tmp_path, "retry.yaml", text), "--id", "wf-retry") == wf_id


def test_ids_are_resolved_across_chains_and_workflows(runner: CliRunner, tmp_path: Path) -> None:
    path = write(
        tmp_path, "one.yaml", "jobs:\n  a: {type: math_chain, config: {numbers: [1, 2]}}\n"
    )
    assert run_ok(runner, path, "--id", "same-wf") == "same-wf"
    chain = invoke(runner, "submit", "math_chain", "--numbers", "1", "2", "--id", "same-ch", "-q")
    assert chain.exit_code == 0, chain.output
    assert status(runner, "same-w")["jobs"][0]["name"] == "a"
    assert status(runner, "same-c")["type"] == "math_chain"
    ambiguous = invoke(runner, "status", "same")
    assert (ambiguous.exit_code, ambiguous.stderr) == (
        3, "taskchain: error: id prefix 'same' is ambiguous: it matches same-wf, same-ch\n")  # fmt: skip
    taken = invoke(runner, "run", path, "--id", "same-ch")
    assert (taken.exit_code, taken.stderr) == (
        2, "taskchain: error: --id 'same-ch': a chain has that id\n")  # fmt: skip


def test_a_0003_store_is_upgraded_to_0004(runner: CliRunner) -> None:
    url = settings.get_settings().store_url
    assert (
        invoke(runner, "submit", "math_chain", "--numbers", "4", "5", "--id", "old", "-q").exit_code
        == 0
    )
    dispose_engines()
    db = sqlite3.connect(url.removeprefix("sqlite:///"))  # back to what 0003 made
    db.executescript(
        "DROP TABLE workflow; DROP INDEX ix_chain_workflow_id;"
        "ALTER TABLE chain DROP COLUMN workflow_id; ALTER TABLE chain DROP COLUMN job;"
        "UPDATE alembic_version SET version_num = '0003';"
    )
    db.close()
    assert schema.state(schema_engine(url)) == schema.State("0003", stamped=True)
    wf_id = run_ok(runner, str(EXAMPLES / "fanout.yaml"))  # the first command upgrades it
    assert schema.state(get_engine()) == schema.State("0005", stamped=True)
    assert status(runner, "old")["result"] == 9
    assert status(runner, wf_id)["status"] == "COMPLETED"


def schema_engine(url: str) -> Any:
    from sqlalchemy import create_engine

    return create_engine(url)


def test_the_nightly_example_mixes_three_types(runner: CliRunner, workspace: Path) -> None:
    import shutil

    shutil.copy(EXAMPLES.parent / "sales.csv", workspace / "sales.csv")
    wf_id = run_ok(runner, str(EXAMPLES / "nightly.yaml"))
    doc = jobs(status(runner, wf_id))
    assert {n: j["type"] for n, j in doc.items()} == {
        "clean": "data_chain", "summary": "data_chain", "totals": "math_chain",
        "archive": "io_chain"}  # fmt: skip
    archived = workspace / "archive" / "1-analyze.json"
    report = json.loads(archived.read_text())
    assert report["rows"] == 17
    summary = status(runner, doc["summary"]["chain_id"])
    assert summary["config"]["data_input"].endswith("/2-transform.parquet")  # resolved


def test_watch_json_is_a_line_per_job_then_the_workflow(runner: CliRunner, tmp_path: Path) -> None:
    wf_id = invoke(runner, "run", write(tmp_path, "mixed.yaml", MIXED), "-q").stdout.strip()
    watched = invoke(runner, "watch", wf_id, "--json")
    assert watched.exit_code == 1, watched.output
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    chains = {name: job["chain_id"] for name, job in jobs(status(runner, wf_id)).items()}
    # A finished workflow: each job once, in the file's order, then the workflow's line.
    assert [(e["kind"], e["job"], e["status"]) for e in lines[:-1]] == [
        ("job", "bad", "FAILED"), ("job", "after-bad", "SKIPPED"), ("job", "later", "SKIPPED"),
        ("job", "good", "COMPLETED"), ("job", "after-good", "COMPLETED"),
    ]  # fmt: skip
    good = lines[3]
    assert {k: good[k] for k in ("id", "chain_id", "type", "needs", "error", "outputs")} == {
        "id": wf_id, "chain_id": chains["good"], "type": "math_chain", "needs": [],
        "error": None, "outputs": {"value": 5},
    }  # fmt: skip
    assert (lines[0]["outputs"], lines[1]["error"]) == (None, "job 'bad' failed")
    last = lines[-1]
    assert {k: last[k] for k in ("id", "kind", "name", "status", "jobs", "by_status")} == {
        "id": wf_id, "kind": "workflow", "name": "mixed", "status": "FAILED", "jobs": 5,
        "by_status": {"FAILED": 1, "SKIPPED": 2, "COMPLETED": 2},
    }  # fmt: skip
    assert last["error"].startswith("job 'bad' failed: ")
    assert last["finished_at"].endswith("Z")


SLOW = """\
name: slow
jobs:
  first:
    type: math_chain
    config: {numbers: [1, 2, 3]}
  second:
    type: math_chain
    needs: [first]
    config: {operation: multiply, numbers: ["${{ jobs.first.outputs.value }}", 7]}
"""


@pytest.mark.redis
def test_watch_json_follows_a_running_workflow_change_by_change(
    redis_env: dict[str, str], tmp_path: Path
) -> None:
    """On a real worker, `run` returns at once; `watch --json` then sees each job move, one
    line per change and never the same state twice, and ends with the workflow's line."""
    from tests.support import proc

    wf_file = write(tmp_path, "slow.yaml", SLOW)
    started = proc.run(["run", wf_file, "-q"], redis_env)  # no worker yet: nothing moves
    assert started.returncode == 0, started.stderr
    wf_id = started.stdout.strip()
    watcher = proc.spawn_taskchain(
        ["watch", wf_id, "--json"], redis_env, stdout=subprocess.PIPE, text=True
    )
    plain = proc.spawn_taskchain(["watch", wf_id], redis_env, stdout=subprocess.PIPE, text=True)
    lines = proc.Lines(watcher.stdout)  # type: ignore[arg-type]
    first = [json.loads(lines.next()) for _ in range(3)]
    assert [(e["kind"], e.get("job"), e["status"]) for e in first] == [
        ("job", "first", "RUNNING"), ("job", "second", "PENDING"), ("workflow", None, "RUNNING"),
    ]  # fmt: skip
    with proc.worker(redis_env, tmp_path / "worker.log"):
        events = [json.loads(line) for line in lines.rest(timeout=90)]
        assert watcher.wait(timeout=30) == 0
        assert plain.wait(timeout=30) == 0
    # Not a terminal, without --json: a plain line per job change, then the summary.
    text = plain.stdout.read().splitlines()  # type: ignore[union-attr]
    heads = [line.split(" chain ")[0] for line in text[:-1]]
    assert len(heads) == len(set(heads)), text  # each job state once
    assert heads[0] == f"{wf_id[:12]} job first RUNNING", text
    assert heads[-1] == f"{wf_id[:12]} job second COMPLETED", text
    assert f"{wf_id[:12]} job first COMPLETED" in heads, text
    assert text[-2].endswith(" result 42"), text
    assert text[-1].startswith(f"workflow {wf_id} slow COMPLETED in "), text
    per_job: dict[str, list[str]] = {}
    for event in first[:2] + events[:-1]:
        assert event["kind"] == "job", event
        per_job.setdefault(event["job"], []).append(event["status"])
    for states in per_job.values():  # a line per change: no state twice in a row
        assert all(a != b for a, b in pairwise(states)), per_job
    assert per_job["first"][-1] == per_job["second"][-1] == "COMPLETED"
    # (`second` may pass RUNNING between two looks on a busy machine: a state is reported
    # when seen, and the test does not hold the step.)
    finals = {e["job"]: e["outputs"] for e in events[:-1] if e["status"] == "COMPLETED"}
    assert finals == {"first": {"value": 6}, "second": {"value": 42}}
    assert (events[-1]["kind"], events[-1]["status"], events[-1]["by_status"]) == (
        "workflow", "COMPLETED", {"COMPLETED": 2},
    )  # fmt: skip
