"""Reads and writes of workflows: their row, and their jobs (chains with `workflow_id`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, or_
from sqlmodel import Session, col, select

from taskchain.errors import AmbiguousId
from taskchain.store.models import ChainRecord, Status
from taskchain.store.workflow_model import WorkflowRecord


@dataclass
class WorkflowView:
    workflow: WorkflowRecord
    #: One chain per job, in the file's order.
    jobs: list[ChainRecord]

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
    if session.get(WorkflowRecord, ref) is not None:
        return [ref]
    pattern = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = select(WorkflowRecord.id).where(col(WorkflowRecord.id).like(pattern, escape="\\"))
    return list(session.exec(query.limit(6)).all())


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
    process died between a job's end and its workflow's advance)."""
    active = and_(
        col(ChainRecord.workflow_id) == WorkflowRecord.id,
        or_(
            col(ChainRecord.status) == Status.RUNNING,
            and_(col(ChainRecord.status) == Status.PENDING, col(ChainRecord.step_count) > 0),
        ),
    )
    query = select(WorkflowRecord.id).where(
        col(WorkflowRecord.status).in_([Status.PENDING, Status.RUNNING]), ~exists().where(active)
    )
    return list(session.exec(query).all())
