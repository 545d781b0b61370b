"""`delete`, `prune` and `stats` on workflows: a workflow goes whole (its jobs' chains, steps
and folders with it), a job's chain never goes alone, and `stats` counts workflows by status.
Also `list --status SKIPPED` for the jobs a failure skipped. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from taskchain import settings
from taskchain.store import ChainRecord, Status, StepRecord, session
from taskchain.store import prune as retention
from taskchain.store.models import utcnow
from taskchain.store.workflow_model import WorkflowRecord
from tests.support import proc
from tests.support.cli import invoke

DAY = timedelta(days=1)

#: Two data jobs, each writing under `.taskchain/<its chain id>/`.
TIDY = """\
name: tidy
jobs:
  clean:
    type: data_chain
    config: {data_input: t.csv, processing_steps: [clean]}
  stats:
    type: data_chain
    needs: [clean]
    config: {data_input: "${{ jobs.clean.outputs.table }}", processing_steps: [analyze]}
"""

#: `bad` fails, so `after` is SKIPPED; `good` completes.
BROKEN = """\
name: broken
jobs:
  bad: {type: math_chain, config: {operation: divide, numbers: [1, 0]}}
  after: {type: math_chain, needs: [bad], config: {numbers: [1, 2]}}
  good: {type: math_chain, config: {numbers: [2, 3]}}
"""


def run_workflow(runner: CliRunner, folder: Path, text: str, *, code: int = 0) -> str:
    path = folder / "wf.yaml"
    path.write_text(text)
    done = invoke(runner, "run", str(path), "-q")
    assert done.exit_code == code, done.output
    return str(done.stdout.strip())


def tidy(runner: CliRunner, workspace: Path) -> str:
    (workspace / "t.csv").write_text("a,b\n1,2\n3,4\n3,4\n")
    return run_workflow(runner, workspace.parent, TIDY)


def submit(runner: CliRunner, *numbers: str) -> str:
    done = invoke(runner, "submit", "math_chain", "--numbers", *numbers, "-q")
    assert done.exit_code == 0, done.output
    return str(done.stdout.strip())


def job_ids(wf_id: str) -> dict[str, str]:
    with session() as s:
        rows = s.execute(
            select(ChainRecord.job, ChainRecord.id).where(ChainRecord.workflow_id == wf_id)
        ).all()
    return {job: chain_id for job, chain_id in rows}


def left() -> tuple[list[str], list[str], int]:
    """(workflow ids, chain ids, step count) in the store."""
    with session() as s:
        flows = sorted(s.execute(select(WorkflowRecord.id)).scalars())
        chains = sorted(s.execute(select(ChainRecord.id)).scalars())
        steps = int(s.execute(select(func.count()).select_from(StepRecord)).scalar_one())
    return flows, chains, steps


def folders(workspace: Path) -> list[str]:
    root = workspace / ".taskchain"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def age(*, workflow: str | None = None, chains: Sequence[str] = (), by: timedelta) -> None:
    """Make a workflow and/or chains look finished `by` ago."""
    when = utcnow() - by
    with session(write=True) as s:
        if workflow is not None:
            s.execute(
                update(WorkflowRecord)
                .where(WorkflowRecord.id == workflow)  # type: ignore[arg-type]
                .values(finished_at=when, created_at=when - DAY)
            )
        if chains:
            s.execute(
                update(ChainRecord)
                .where(ChainRecord.id.in_(list(chains)))  # type: ignore[attr-defined]
                .values(finished_at=when, created_at=when - DAY)
            )


def invoke_with_input(runner: CliRunner, args: list[str], text: str) -> Any:
    from taskchain.cli import app

    return runner.invoke(app, args, input=text)


def prune_json(runner: CliRunner, *args: str) -> dict[str, Any]:
    done = invoke(runner, "prune", *args, "--json")
    assert done.exit_code == 0, done.output
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


# ---- delete ------------------------------------------------------------------------------


@pytest.mark.usefixtures("store_url")
def test_delete_a_workflow_takes_its_jobs_steps_and_folders(
    runner: CliRunner, workspace: Path
) -> None:
    wf_id = tidy(runner, workspace)
    jobs = job_ids(wf_id)
    kept = submit(runner, "1", "2")
    assert folders(workspace) == sorted(jobs.values())
    assert left()[2] == 3  # clean, analyze and the plain chain's add
    done = invoke(runner, "delete", wf_id[:10], "--yes")
    assert (done.exit_code, done.stdout, done.stderr) == (
        0, "", f"deleted workflow {wf_id} and its 2 job chain(s)\n")  # fmt: skip
    assert left() == ([], [kept], 1)
    assert folders(workspace) == []
    gone = invoke(runner, "status", wf_id)
    assert (gone.exit_code, gone.stderr) == (
        3,
        f"taskchain: error: no chain matches id {wf_id!r}\n",
    )


@pytest.mark.usefixtures("store_url")
def test_delete_of_a_jobs_chain_alone_is_refused_and_deletes_nothing(
    runner: CliRunner, workspace: Path
) -> None:
    wf_id = tidy(runner, workspace)
    jobs = job_ids(wf_id)
    plain = submit(runner, "1", "2")
    before = left()
    for refs in ([jobs["stats"]], [plain, jobs["stats"][:12]]):  # a mixed list: all checked first
        done = invoke(runner, "delete", *refs, "--yes")
        assert (done.exit_code, done.stdout, done.stderr) == (
            2, "",
            f"taskchain: error: chain {jobs['stats']} is job 'stats' of workflow {wf_id}: "
            f"delete the workflow instead (taskchain delete {wf_id})\n",
        )  # fmt: skip
        assert left() == before
    assert folders(workspace) == sorted(jobs.values())
    # With its workflow in the same list, the job goes with it.
    done = invoke(runner, "delete", jobs["stats"], wf_id, plain, "--yes")
    assert (done.exit_code, done.stderr) == (
        0, f"deleted workflow {wf_id} and its 2 job chain(s)\ndeleted {plain}\n")  # fmt: skip
    assert left() == ([], [], 0)


def test_deletes_question_names_the_workflow(
    runner: CliRunner, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskchain.cli import manage

    monkeypatch.setattr(manage, "_interactive", lambda: True)
    wf_id = run_workflow(runner, workspace.parent, BROKEN, code=1)
    plain = submit(runner, "1", "2")
    done = invoke_with_input(runner, ["delete", wf_id, plain], "n\n")
    question = f"Delete 1 workflow(s) (3 job chains): {wf_id[:12]} and 1 chain(s): {plain[:12]}?"
    assert (done.exit_code, done.stderr) == (0, f"{question} [y/N]: nothing deleted\n")
    assert len(left()[1]) == 4
    monkeypatch.setattr(manage, "_interactive", lambda: False)
    refused = invoke(runner, "delete", wf_id)
    assert (refused.exit_code, refused.stderr) == (
        2, "taskchain: error: refusing to delete without --yes when stdin is not a terminal\n")  # fmt: skip


@pytest.mark.redis
def test_delete_of_a_running_workflow_cancels_it_first(redis_env: dict[str, str]) -> None:
    path = Path(redis_env["TASKCHAIN_WORKSPACE"]).parent / "wf.yaml"
    path.write_text(BROKEN)
    done = proc.run(["run", str(path), "-q"], redis_env)  # no worker: its jobs wait queued
    assert done.returncode == 0, done.stderr
    wf_id = done.stdout.strip()
    shown = json.loads(proc.run(["status", wf_id, "--json"], redis_env).stdout)
    assert shown["status"] == "RUNNING"
    done = proc.run(["delete", wf_id, "--yes"], redis_env)
    assert (done.returncode, done.stderr) == (
        0,
        f"deleted workflow {wf_id} and its 3 job chain(s)\n",
    )
    assert left() == ([], [], 0)


# ---- prune -------------------------------------------------------------------------------


@pytest.mark.usefixtures("store_url")
def test_prune_takes_old_finished_workflows_whole(runner: CliRunner, workspace: Path) -> None:
    old = tidy(runner, workspace)
    old_jobs = job_ids(old)
    failed = run_workflow(runner, workspace.parent, BROKEN, code=1)
    fresh = tidy(runner, workspace)
    chain = submit(runner, "5", "6")
    age(workflow=old, chains=list(old_jobs.values()), by=40 * DAY)
    age(workflow=failed, chains=list(job_ids(failed).values()), by=35 * DAY)
    age(chains=[chain], by=31 * DAY)
    # `fresh` finished now, though its jobs' chains look old: they stay with their workflow.
    age(chains=list(job_ids(fresh).values()), by=90 * DAY)
    before = left()
    doc = prune_json(runner, "--older-than", "30d", "--dry-run")
    assert {k: v for k, v in doc.items() if k not in ("before", "statuses")} == {
        "dry_run": True, "chains": 1, "steps": 1 + 2 + 2, "folders": 2,  # broken: 2 ran, 1 skipped
        "by_status": {"COMPLETED": 1, "FAILED": 0, "CANCELLED": 0},
        "workflows": 2, "jobs": 2 + 3,
        "workflows_by_status": {"COMPLETED": 1, "FAILED": 1, "CANCELLED": 0},
    }  # fmt: skip
    assert left() == before and len(folders(workspace)) == 4
    done = invoke(runner, "prune", "--older-than", "30d", "--yes")
    assert done.exit_code == 0, done.output
    assert done.stderr.startswith(
        "pruned 1 chain(s) and 2 workflow(s) (5 job chains), 5 step(s), 2 folder(s) finished "
        "before "
    )
    assert left() == ([fresh], sorted(job_ids(fresh).values()), 2)
    assert folders(workspace) == sorted(job_ids(fresh).values())
    # Only FAILED: the COMPLETED workflow that is left is not taken.
    age(workflow=fresh, by=40 * DAY)
    doc = prune_json(runner, "--older-than", "30d", "--status", "FAILED", "--yes")
    assert (doc["workflows"], doc["jobs"], doc["chains"]) == (0, 0, 0)
    assert left()[0] == [fresh]


@pytest.mark.usefixtures("store_url")
def test_a_workflow_with_a_job_still_running_is_not_pruned(
    runner: CliRunner, workspace: Path
) -> None:
    wf_id = run_workflow(runner, workspace.parent, BROKEN, code=1)
    jobs = job_ids(wf_id)
    age(workflow=wf_id, chains=list(jobs.values()), by=10 * DAY)
    with session(write=True) as s:  # as after a cancel, before the running job has ended
        s.execute(
            update(ChainRecord)
            .where(ChainRecord.id == jobs["good"])  # type: ignore[arg-type]
            .values(status=Status.RUNNING)
        )
    assert prune_json(runner, "--older-than", "1d", "--yes")["workflows"] == 0
    assert left()[0] == [wf_id]
    with session(write=True) as s:
        s.execute(
            update(ChainRecord)
            .where(ChainRecord.id == jobs["good"])  # type: ignore[arg-type]
            .values(status=Status.COMPLETED)
        )
    assert prune_json(runner, "--older-than", "1d", "--yes")["workflows"] == 1
    assert left() == ([], [], 0)


def test_workers_prune_workflows_under_retention(
    runner: CliRunner, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf_id = run_workflow(runner, workspace.parent, BROKEN, code=1)
    age(workflow=wf_id, chains=list(job_ids(wf_id).values()), by=3 * DAY)
    monkeypatch.setenv("TASKCHAIN_RETENTION", "2d")
    settings.configure()
    done = retention.prune_if_due(retention.Timer())
    assert done is not None
    assert (done.chains, done.workflows, done.jobs, done.workflows_by_status) == (
        0, 1, 3, {"FAILED": 1})  # fmt: skip
    assert left() == ([], [], 0)


# ---- stats and list ----------------------------------------------------------------------


@pytest.mark.usefixtures("store_url")
def test_stats_count_workflows_by_status(runner: CliRunner, workspace: Path) -> None:
    empty = json.loads(invoke(runner, "stats", "--json").stdout)
    assert empty["workflows"] == {"total": 0, "by_status": {
        "PENDING": 0, "RUNNING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELLED": 0}}  # fmt: skip
    assert "workflows by status" not in invoke(runner, "stats").stdout
    tidy(runner, workspace)
    run_workflow(runner, workspace.parent, BROKEN, code=1)
    submit(runner, "1", "2")
    done = invoke(runner, "stats", "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["workflows"] == {"total": 2, "by_status": {
        "PENDING": 0, "RUNNING": 0, "COMPLETED": 1, "FAILED": 1, "CANCELLED": 0}}  # fmt: skip
    assert doc["total"] == 6  # jobs are chains: 2 + 3, and the plain one
    assert doc["by_status"]["SKIPPED"] == 1
    text = invoke(runner, "stats").stdout
    table = text[text.index("workflows by status") :].split()
    assert table[table.index("total") + 1] == "2"
    assert table[table.index("FAILED") + 1] == "1"


@pytest.mark.usefixtures("store_url")
def test_list_status_skipped_finds_the_skipped_jobs(runner: CliRunner, workspace: Path) -> None:
    wf_id = run_workflow(runner, workspace.parent, BROKEN, code=1)
    done = invoke(runner, "list", "--status", "skipped", "--json")
    assert done.exit_code == 0, done.output
    assert [c["id"] for c in json.loads(done.stdout)] == [job_ids(wf_id)["after"]]
    bad = invoke(runner, "list", "--status", "DONE")
    assert (bad.exit_code, bad.stderr) == (
        2, "taskchain: error: unknown status 'DONE' "
        "(known: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, SKIPPED)\n")  # fmt: skip
