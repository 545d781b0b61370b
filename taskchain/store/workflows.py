"""Reads and writes of workflows: their row, and their jobs (chains with `workflow_id`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_
from sqlalchemy import delete as sql_delete
from sqlmodel import Session, col, select

from taskchain.errors import AmbiguousId
from taskchain.store.models import ChainRecord, Status, StepRecord, utcnow
from taskchain.store.workflow_model import WorkflowRecord


@dataclass
class WorkflowView:
    workflow: WorkflowRecord
    #: One chain per job, in the file's order.
    jobs: list[ChainRecord]
    #: {chain id: steps COMPLETED} of the jobs that have any: filled for the commands that
    #: show progress (`core.get_workflow`), not for the engine's fan-in.
    done: dict[str, int] = field(default_factory=dict)

    def needs(self, job: str) -> list[str]:
        return list(self.workflow.spec["jobs"].get(job, {}).get("needs", []))


def job_state(chain: ChainRecord) -> str:
    """A job's status for the fan-in rule: a started job (its steps planned) that no worker
    has claimed yet is RUNNING, not PENDING, so that it is never started twice."""
    if chain.status == Status.PENDING and chain.step_count > 0:
        return Status.RUNNING.value
    return chain.status.value


def matching_ids(*, session: Session, ref: str) -> list[str]:
    """Workflow ids equal to `ref`, else starting with it (at most 6)."""
    from taskchain.store import queries, tables

    return queries.matching_ids(session=session, table=tables.workflow, ref=ref)


def resolve(*, session: Session, ref: str) -> str | None:
    found = matching_ids(session=session, ref=ref)
    if len(found) > 1:
        raise AmbiguousId(ref, found)
    return found[0] if found else None


def jobs(*, session: Session, workflow: WorkflowRecord) -> list[ChainRecord]:
    chains = session.exec(
        select(ChainRecord).where(col(ChainRecord.workflow_id) == workflow.id)
    ).all()
    order = {name: i for i, name in enumerate(workflow.spec.get("jobs", {}))}
    return sorted(chains, key=lambda c: order.get(c.job or "", len(order)))


def get(*, session: Session, workflow_id: str, lock: bool = False) -> WorkflowView | None:
    """The workflow and its jobs; `lock`: FOR UPDATE on its row (PostgreSQL; SQLite's write
    transaction already holds the one writer lock), so that fan-ins happen one at a time."""
    query = select(WorkflowRecord).where(col(WorkflowRecord.id) == workflow_id)
    if lock:
        query = query.with_for_update()
    workflow = session.exec(query).first()
    if workflow is None:
        return None
    return WorkflowView(workflow, jobs(session=session, workflow=workflow))


def steps_done(session: Session, workflow_id: str) -> dict[str, int]:
    """{chain id: steps COMPLETED} of a workflow's jobs, in one grouped count."""
    query = (
        select(StepRecord.chain_id, func.count())
        .join(ChainRecord, col(ChainRecord.id) == col(StepRecord.chain_id))
        .where(col(ChainRecord.workflow_id) == workflow_id, StepRecord.status == Status.COMPLETED)
        .group_by(col(StepRecord.chain_id))
    )
    return {chain_id: int(n) for chain_id, n in session.exec(query).all()}


def list_workflows(
    *, session: Session, statuses: Sequence[Status] = (), limit: int | None = 20
) -> list[WorkflowRecord]:
    query = select(WorkflowRecord).order_by(col(WorkflowRecord.created_at).desc())
    if statuses:
        query = query.where(col(WorkflowRecord.status).in_(list(statuses)))
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


def workflow_of(*, session: Session, chain_id: str) -> tuple[str | None, Status | None]:
    """(workflow id, chain status) of a chain, in one SELECT: the cheap check after a step."""
    row = session.exec(
        select(ChainRecord.workflow_id, ChainRecord.status).where(col(ChainRecord.id) == chain_id)
    ).first()
    return (row[0], Status(row[1])) if row is not None else (None, None)


def stalled(*, session: Session) -> list[str]:
    """RUNNING workflows none of whose jobs is running or started: a fan-in was lost (a
    process died between a job's end and its workflow's advance). A workflow an embedded
    process runs (a job waiting under a runner) is left to that process, or to `retry`."""
    mine = col(ChainRecord.workflow_id) == WorkflowRecord.id
    active = and_(
        mine,
        or_(
            col(ChainRecord.status) == Status.RUNNING,
            and_(col(ChainRecord.status) == Status.PENDING, col(ChainRecord.step_count) > 0),
        ),
    )
    embedded = and_(
        mine,
        col(ChainRecord.status).in_([Status.PENDING, Status.RUNNING]),
        col(ChainRecord.runner).is_not(None),
    )
    query = select(WorkflowRecord.id).where(
        col(WorkflowRecord.status).in_([Status.PENDING, Status.RUNNING]),
        ~exists().where(active),
        ~exists().where(embedded),
    )
    return list(session.exec(query).all())


def owners(*, session: Session, chain_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{chain id: (workflow id, job name)} for those of `chain_ids` that are a workflow's job."""
    if not chain_ids:
        return {}
    rows = session.exec(
        select(ChainRecord.id, ChainRecord.workflow_id, ChainRecord.job).where(
            col(ChainRecord.id).in_(list(chain_ids)), col(ChainRecord.workflow_id).is_not(None)
        )
    ).all()
    return {chain_id: (wf_id or "", job or "") for chain_id, wf_id, job in rows}


def job_chains(*, session: Session, workflow_ids: Sequence[str]) -> list[tuple[str, str | None]]:
    """(chain id, recorded workspace) of every job of these workflows."""
    if not workflow_ids:
        return []
    query = select(ChainRecord.id, ChainRecord.workspace).where(
        col(ChainRecord.workflow_id).in_(list(workflow_ids))
    )
    return [(chain_id, workspace) for chain_id, workspace in session.exec(query).all()]


@dataclass
class Removed:
    #: (chain id, recorded workspace) of each job chain deleted, for their folders.
    jobs: list[tuple[str, str | None]]
    steps: int


def delete(*, session: Session, workflow_ids: Sequence[str]) -> Removed:
    """Delete workflows whole: their rows, their jobs' chains and those chains' steps, in the
    caller's transaction (a workflow is never left short of a job). Statements select the
    jobs by workflow id, so a workflow of many jobs binds no long list of chain ids."""
    ids = list(workflow_ids)
    if not ids:
        return Removed(jobs=[], steps=0)
    jobs = job_chains(session=session, workflow_ids=ids)
    steps = sql_delete(StepRecord).where(col(StepRecord.chain_id).in_(_jobs_of(ids)))
    gone = session.execute(steps)
    session.execute(sql_delete(ChainRecord).where(col(ChainRecord.workflow_id).in_(ids)))
    session.execute(sql_delete(WorkflowRecord).where(col(WorkflowRecord.id).in_(ids)))
    return Removed(jobs=jobs, steps=int(gone.rowcount or 0))  # type: ignore[attr-defined]


def count_steps(*, session: Session, workflow_ids: Sequence[str]) -> int:
    """The steps of these workflows' jobs."""
    if not workflow_ids:
        return 0
    query = select(func.count()).select_from(StepRecord)
    query = query.where(col(StepRecord.chain_id).in_(_jobs_of(list(workflow_ids))))
    return int(session.exec(query).one())


def _jobs_of(workflow_ids: list[str]) -> Any:
    return select(ChainRecord.id).where(col(ChainRecord.workflow_id).in_(workflow_ids))


def is_orphaned(view: WorkflowView, *, now: datetime | None = None) -> bool:
    """An unfinished workflow that an embedded process ran and that no process runs now:
    every unfinished job waits under an embedded runner, and no job's runner lease is still
    live (a finished job's lease lapses too, as nothing renews it). It stands still until
    `retry` takes it over. A job that workers run (no runner) makes it not orphaned, and so
    does one they finished less than a step lease ago: its fan-in, which starts what waited
    for it or settles the workflow, comes after the job's end, in another transaction."""
    if view.workflow.status.finished:
        return False
    held = [c for c in view.jobs if c.runner is not None]
    if not held or any(c.runner is None for c in view.jobs if not c.status.finished):
        return False
    now = now or utcnow()
    if any(c.runner_lease_expires_at is not None and c.runner_lease_expires_at >= now
           for c in held):  # fmt: skip
        return False
    from taskchain.settings import get_settings

    fan_in_due = now - timedelta(seconds=get_settings().step_lease)
    return not any(
        c.runner is None and c.finished_at is not None and c.finished_at > fan_in_due
        for c in view.jobs
    )


def dead_runner(view: WorkflowView) -> ChainRecord | None:
    """The job whose runner lease ran out last: it names the process that died."""
    held = [c for c in view.jobs if c.runner is not None and c.runner_lease_expires_at]
    return max(held, key=lambda c: c.runner_lease_expires_at or utcnow(), default=None)
