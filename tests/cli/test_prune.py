"""`taskchain prune` and TASKCHAIN_RETENTION: old finished chains go, with their steps and
folders, in batches; unfinished chains stay, however old. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from taskchain import settings
from taskchain.cli import app
from taskchain.store import ChainRecord, Status, StepRecord, queries, session
from taskchain.store import prune as retention
from taskchain.store.models import utcnow

DAY = timedelta(days=1)


def make(chain_id: str, status: Status, *, age: timedelta, steps: int = 2,
         workspace: Path | None = None, folder: bool = True) -> None:  # fmt: skip
    """A chain finished (or, unfinished, created) `age` ago, with steps and a folder."""
    when = utcnow() - age
    finished = status in retention.PRUNABLE
    chain = ChainRecord(id=chain_id, type="math_chain", status=status, created_at=when - DAY,
                        finished_at=when if finished else None, step_count=steps,
                        workspace=str(workspace) if workspace else None)  # fmt: skip
    rows = [StepRecord(chain_id=chain_id, index=i, name=f"s{i}", queue="math", task_id=f"t{i}",
                       status=status) for i in range(steps)]  # fmt: skip
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=rows)
    if folder:
        root = workspace or settings.get_settings().workspace
        (root / ".taskchain" / chain_id).mkdir(parents=True)
        (root / ".taskchain" / chain_id / "1-clean.parquet").write_text("x")


def ids_left() -> list[str]:
    with session() as s:
        return sorted(s.execute(select(ChainRecord.id)).scalars())


def steps_left() -> int:
    with session() as s:
        return int(s.execute(select(func.count()).select_from(StepRecord)).scalar_one())


def prune_json(runner: CliRunner, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["prune", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def old_and_new(workspace: Path) -> None:
    make("done-old", Status.COMPLETED, age=40 * DAY)
    make("failed-old", Status.FAILED, age=31 * DAY)
    make("cancelled-old", Status.CANCELLED, age=90 * DAY, folder=False)
    make("done-new", Status.COMPLETED, age=29 * DAY)
    make("running-old", Status.RUNNING, age=400 * DAY)
    make("pending-old", Status.PENDING, age=400 * DAY)


def test_dry_run_counts_and_removes_nothing(
    store_url: str, runner: CliRunner, old_and_new: None, workspace: Path
) -> None:
    doc = prune_json(runner, "--older-than", "30d", "--dry-run")
    assert {k: v for k, v in doc.items() if k != "before"} == {
        "dry_run": True, "statuses": ["COMPLETED", "FAILED", "CANCELLED"], "chains": 3,
        "steps": 6, "folders": 2, "by_status": {"COMPLETED": 1, "FAILED": 1, "CANCELLED": 1},
        "workflows": 0, "jobs": 0,
        "workflows_by_status": {"COMPLETED": 0, "FAILED": 0, "CANCELLED": 0},
    }  # fmt: skip
    assert len(ids_left()) == 6 and steps_left() == 12
    assert (workspace / ".taskchain" / "done-old").is_dir()


def test_prune_removes_old_finished_chains_steps_and_folders_only(
    store_url: str, runner: CliRunner, old_and_new: None, workspace: Path
) -> None:
    result = runner.invoke(app, ["prune", "--older-than", "30d", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("pruned 3 chain(s), 6 step(s), 2 folder(s) finished before ")
    assert ids_left() == ["done-new", "pending-old", "running-old"]
    assert steps_left() == 6
    assert sorted(p.name for p in (workspace / ".taskchain").iterdir()) == [
        "done-new", "pending-old", "running-old"]  # fmt: skip
    again = prune_json(runner, "--older-than", "30d", "--yes")
    assert (again["chains"], again["steps"], again["folders"]) == (0, 0, 0)


def test_status_filter(store_url: str, runner: CliRunner, old_and_new: None) -> None:
    doc = prune_json(runner, "--older-than", "30d", "--status", "failed,CANCELLED", "--yes")
    assert (doc["chains"], doc["by_status"]) == (2, {"FAILED": 1, "CANCELLED": 1})
    assert ids_left() == ["done-new", "done-old", "pending-old", "running-old"]
    doc = prune_json(runner, "--older-than", "1d", "-s", "COMPLETED", "--yes")
    assert (doc["chains"], doc["by_status"]) == (2, {"COMPLETED": 2})
    assert ids_left() == ["pending-old", "running-old"]


def test_the_folder_in_the_workspace_the_chain_recorded_goes(
    runner: CliRunner, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "other-ws"
    make("far", Status.COMPLETED, age=2 * DAY, workspace=elsewhere)
    outside = tmp_path / "other-ws" / "keep.txt"
    outside.write_text("mine")
    assert prune_json(runner, "--older-than", "1d", "--yes")["folders"] == 1
    assert not (elsewhere / ".taskchain" / "far").exists() and outside.read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "30d"], "refusing to prune without --yes when stdin is not a terminal"),
        (["--older-than", "soon", "--yes"],
         "--older-than 'soon' is not a duration (try 90, 90s, 5m, 1h30m)"),
        (["--older-than", "1d", "--status", "RUNNING", "--yes"],
         "--status 'RUNNING': prune removes only finished chains (COMPLETED, FAILED, CANCELLED)"),
    ],
)  # fmt: skip
def test_bad_input_removes_nothing(
    runner: CliRunner, old_and_new: None, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["prune", *args])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"taskchain: error: {message}\n",
    )
    assert len(ids_left()) == 6


def test_many_chains_go_in_batches_each_its_own_transaction(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session(write=True) as s:
        for i in range(230):
            when = utcnow() - 3 * DAY
            s.add(ChainRecord(id=f"c{i:04d}", type="math_chain", status=Status.COMPLETED,
                              created_at=when, finished_at=when))  # fmt: skip
            s.flush()
            s.add(StepRecord(chain_id=f"c{i:04d}", index=0, name="s", queue="math", task_id="t",
                             status=Status.COMPLETED))  # fmt: skip
    make("live", Status.RUNNING, age=9 * DAY, folder=False)
    writes: list[int] = []
    real = retention.session

    def counting(*, write: bool = False) -> Any:
        writes.append(write)
        return real(write=write)

    monkeypatch.setattr(retention, "session", counting)
    done = retention.prune(before=utcnow() - DAY, batch=100)
    assert (done.chains, done.steps, done.folders) == (230, 230, 0)
    assert writes.count(True) == 3  # 100 + 100 + 30: the store is free between batches
    assert ids_left() == ["live"]


@pytest.mark.usefixtures("store_url")  # SQLite and PostgreSQL
def test_a_chain_retried_after_the_page_was_read_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    make("a", Status.FAILED, age=5 * DAY, folder=False)
    make("b", Status.FAILED, age=5 * DAY, folder=False)
    real = retention._delete_batch

    def retry_first(rows: Any, *args: Any) -> Any:
        with session(write=True) as s:
            chain = s.get(ChainRecord, "a")
            assert chain is not None
            chain.status = Status.RUNNING  # as `taskchain retry` would, just now
        return real(rows, *args)

    monkeypatch.setattr(retention, "_delete_batch", retry_first)
    done = retention.prune(before=utcnow() - DAY)
    assert (done.chains, done.by_status) == (1, {"FAILED": 1})
    assert ids_left() == ["a"]


def test_workers_prune_under_retention_at_most_once_an_hour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make("old", Status.COMPLETED, age=3 * DAY)
    clock = [1000.0]
    timer = retention.Timer(clock=lambda: clock[0])
    monkeypatch.delenv("TASKCHAIN_RETENTION", raising=False)
    settings.configure()
    assert retention.prune_if_due(timer) is None  # unset: keep forever
    monkeypatch.setenv("TASKCHAIN_RETENTION", "2d")
    settings.configure()
    done = retention.prune_if_due(timer)
    assert done is not None and done.chains == 1 and ids_left() == []
    make("old2", Status.COMPLETED, age=3 * DAY)
    clock[0] += 3599
    assert retention.prune_if_due(timer) is None and ids_left() == ["old2"]
    clock[0] += 1
    done = retention.prune_if_due(timer)
    assert done is not None and done.chains == 1 and ids_left() == []


def test_celery_results_expire_with_retention_or_after_a_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskchain.engine.app import celery_config

    monkeypatch.setenv("TASKCHAIN_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("TASKCHAIN_RESULT_BACKEND", "redis://127.0.0.1:1/1")
    settings.configure()
    assert celery_config(settings.get_settings())["result_expires"] == 86400
    monkeypatch.setenv("TASKCHAIN_RETENTION", "7d")
    settings.configure()
    assert celery_config(settings.get_settings())["result_expires"] == 7 * 86400
