"""Retention: remove finished chains older than an age, their steps and workspace folders.

Only finished chains (COMPLETED, FAILED, CANCELLED) are ever pruned: a PENDING or RUNNING
chain is someone's work in progress, however old. A chain's age is counted from when it
finished (from when it was created if it never recorded a finish), so a week-long run that
ended yesterday is a day old.

A workflow's job is never pruned alone (its workflow would be left short of a job): finished
workflows are pruned whole, by the workflow's own status and finish, with every job's chain,
step and folder; a workflow with a job still PENDING or RUNNING stays.

Deletes run in batches (`BATCH` chains per transaction), so the store stays usable by workers
and readers while a large prune runs; each batch looks at the statuses again under its lock,
so a chain retried meanwhile is left alone.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlmodel import Session, col

from taskchain.settings import get_settings
from taskchain.store import workflows as wfstore
from taskchain.store.db import session
from taskchain.store.models import ChainRecord, Status, StepRecord, utcnow
from taskchain.store.workflow_model import WorkflowRecord

log = logging.getLogger(__name__)

PRUNABLE = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
BATCH = 500
#: A worker prunes at most this often (seconds), whatever its sweep interval.
PERIOD = 3600.0


@dataclass
class Pruned:
    #: Chains that belong to no workflow, and those per status.
    chains: int = 0
    #: Steps and folders of every chain removed, workflows' jobs included.
    steps: int = 0
    folders: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    #: Workflows removed whole, per status, and their jobs' chains.
    workflows: int = 0
    jobs: int = 0
    workflows_by_status: dict[str, int] = field(default_factory=dict)


def prune(
    *,
    before: datetime,
    statuses: Sequence[Status] = PRUNABLE,
    dry_run: bool = False,
    batch: int = BATCH,
) -> Pruned:
    """Remove (or, dry, count) the finished chains and workflows in `statuses` that finished
    before `before`, with their steps and `.taskchain/<id>/` folders."""
    wanted = [s for s in statuses if s in PRUNABLE]
    done = Pruned()
    _prune_chains(wanted, before, dry_run, batch, done)
    _prune_workflows(wanted, before, dry_run, batch, done)
    return done


def _prune_chains(
    wanted: list[Status], before: datetime, dry_run: bool, batch: int, done: Pruned
) -> None:
    after = ""  # keyset paging by id: stable while rows go
    while wanted:
        with session() as s:
            rows = s.execute(_candidates(wanted, before, after, batch)).all()
        if not rows:
            break
        after = rows[-1][0]
        if dry_run:
            kept = list(rows)
            with session() as s:
                done.steps += _count_steps(s, [r[0] for r in kept])
        else:
            kept = _delete_batch(rows, wanted, before, done)
        for chain_id, status, workspace in kept:
            done.chains += 1
            name = Status(status).value
            done.by_status[name] = done.by_status.get(name, 0) + 1
            folder = chain_folder(chain_id, workspace)
            if folder is not None and (dry_run or _remove(folder)):
                done.folders += 1


def _finished_at() -> Any:
    return func.coalesce(col(ChainRecord.finished_at), col(ChainRecord.created_at))


def _candidates(wanted: list[Status], before: datetime, after: str, limit: int) -> Any:
    return (
        select(col(ChainRecord.id), col(ChainRecord.status), col(ChainRecord.workspace))
        .where(col(ChainRecord.status).in_(wanted))
        .where(_finished_at() < before)
        .where(col(ChainRecord.workflow_id).is_(None))  # jobs go with their workflow
        .where(col(ChainRecord.id) > after)
        .order_by(col(ChainRecord.id))
        .limit(limit)
    )


def _count_steps(s: Session, ids: list[str]) -> int:
    query = select(func.count()).select_from(StepRecord).where(col(StepRecord.chain_id).in_(ids))
    return int(s.execute(query).scalar_one())


def _delete_batch(
    rows: Sequence[Any],
    wanted: list[Status],
    before: datetime,
    done: Pruned,
) -> list[Any]:
    """One transaction: the batch's chains that still qualify, and their steps, go."""
    ids = [r[0] for r in rows]
    with session(write=True) as s:
        # Under the write lock (SQLite) or row locks (PostgreSQL): a retry that started since
        # the page was read has made its chain RUNNING, and it stays.
        still = (
            select(col(ChainRecord.id))
            .where(col(ChainRecord.id).in_(ids))
            .where(col(ChainRecord.status).in_(wanted))
            .where(_finished_at() < before)
            .where(col(ChainRecord.workflow_id).is_(None))
            .with_for_update()
        )
        keep = set(s.execute(still).scalars())
        if keep:
            gone = s.execute(delete(StepRecord).where(col(StepRecord.chain_id).in_(keep)))
            done.steps += int(gone.rowcount or 0)  # type: ignore[attr-defined]
            s.execute(delete(ChainRecord).where(col(ChainRecord.id).in_(keep)))
    return [r for r in rows if r[0] in keep]


def _prune_workflows(
    wanted: list[Status], before: datetime, dry_run: bool, batch: int, done: Pruned
) -> None:
    """Finished workflows, whole, as `_prune_chains` does chains: batches by id, each checked
    again under its lock (a workflow retried since the page was read stays)."""
    after = ""
    while wanted:
        with session() as s:
            rows = s.execute(_workflow_candidates(wanted, before, after, batch)).all()
            if dry_run:
                ids = [r[0] for r in rows]
                jobs = wfstore.job_chains(session=s, workflow_ids=ids)
                done.steps += wfstore.count_steps(session=s, workflow_ids=ids)
        if not rows:
            break
        after = rows[-1][0]
        if not dry_run:
            rows, jobs = _delete_workflows(rows, wanted, before, done)
        for _, status in rows:
            done.workflows += 1
            name = Status(status).value
            done.workflows_by_status[name] = done.workflows_by_status.get(name, 0) + 1
        done.jobs += len(jobs)
        for chain_id, workspace in jobs:
            folder = chain_folder(chain_id, workspace)
            if folder is not None and (dry_run or _remove(folder)):
                done.folders += 1


def _delete_workflows(
    rows: Sequence[Any], wanted: list[Status], before: datetime, done: Pruned
) -> tuple[list[Any], list[tuple[str, str | None]]]:
    """One transaction: the batch's workflows that still qualify go, whole."""
    ids = [r[0] for r in rows]
    with session(write=True) as s:
        still = _workflow_candidates(wanted, before, "", len(ids))
        still = still.where(col(WorkflowRecord.id).in_(ids)).with_for_update()
        keep = set(s.execute(still).scalars())
        removed = wfstore.delete(session=s, workflow_ids=sorted(keep))
    done.steps += removed.steps
    return [r for r in rows if r[0] in keep], removed.jobs


def _workflow_candidates(wanted: list[Status], before: datetime, after: str, limit: int) -> Any:
    """Finished workflows (by their own status and finish) none of whose jobs is unfinished:
    a job still under way after a cancel keeps its workflow until it ends."""
    live_job = exists().where(
        col(ChainRecord.workflow_id) == col(WorkflowRecord.id),
        col(ChainRecord.status).in_([Status.PENDING, Status.RUNNING]),
    )
    finished = func.coalesce(col(WorkflowRecord.finished_at), col(WorkflowRecord.created_at))
    return (
        select(col(WorkflowRecord.id), col(WorkflowRecord.status))
        .where(col(WorkflowRecord.status).in_(wanted))
        .where(finished < before)
        .where(~live_job)
        .where(col(WorkflowRecord.id) > after)
        .order_by(col(WorkflowRecord.id))
        .limit(limit)
    )


def chain_folder(chain_id: str, workspace: str | None) -> Path | None:
    """The chain's own `.taskchain/<id>/` folder, if it exists on this machine: in the
    workspace the chain recorded, else in this process's workspace."""
    roots = [Path(workspace)] if workspace else []
    roots.append(get_settings().workspace)
    for root in roots:
        try:
            base = (root / ".taskchain").resolve()
            folder = base / chain_id
            if folder.is_dir() and not folder.is_symlink() and folder.resolve().parent == base:
                return folder
        except (OSError, ValueError):
            continue
    return None


def _remove(folder: Path) -> bool:
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


class Timer:
    """Says when a worker's periodic prune is due: at start, then every `period` seconds."""

    def __init__(self, period: float = PERIOD, clock: Callable[[], float] = time.monotonic):
        self.period = period
        self.clock = clock
        self.next_at: float | None = None

    def due(self) -> bool:
        now = self.clock()
        if self.next_at is not None and now < self.next_at:
            return False
        self.next_at = now + self.period
        return True


def prune_if_due(timer: Timer) -> Pruned | None:
    """A worker's periodic prune under TASKCHAIN_RETENTION (unset: never)."""
    retention = get_settings().retention
    if retention is None or not timer.due():
        return None
    done = prune(before=utcnow() - timedelta(seconds=retention))
    if done.chains or done.workflows:
        log.warning(
            "retention: pruned %d finished chain(s) and %d workflow(s) (%d jobs) older than "
            "%gs (%d steps, %d folders)",
            done.chains,
            done.workflows,
            done.jobs,
            retention,
            done.steps,
            done.folders,
        )
    return done
