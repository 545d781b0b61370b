"""Workflows on the chain engine: record a run, and the fan-in that starts what is ready.

A workflow is a row (`store.workflow_model`) and one chain per job. `run` records them all in
one transaction, each job's chain PENDING with its config as written and no steps; a job is
planned (references resolved from its upstream jobs' outputs, config parsed and checked,
steps stored) only when it starts, because its config, and so its steps, depend on what ran
before it. A PENDING job chain with steps has started: it waits in a queue.

`advance` is the one place that moves a workflow: under a lock on its row (PostgreSQL: FOR
UPDATE; SQLite: the write transaction, one writer at a time) it reads the jobs' statuses,
applies `Graph.advance` until nothing changes, and sets the workflow's status. It depends on
statuses only, so calling it twice, late, or from the recovery sweep is harmless, and a
started job is never started again. Messages go out after commit; a lost one is re-sent by
the recovery sweep like any step's (its `dispatched_at` is set). No Celery import at the top:
`cancel` and reads come through here too.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col

from taskchain.chains import get_type
from taskchain.errors import BrokerUnavailable, InvalidInput, TaskchainError
from taskchain.settings import get_settings
from taskchain.store import ChainRecord, Status, StepRecord, session
from taskchain.store import workflows as wfstore
from taskchain.store.models import utcnow
from taskchain.store.workflow_model import WorkflowRecord
from taskchain.workflows import Graph, refs, spec, workflow_status

log = logging.getLogger(__name__)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Started:
    workflow_id: str
    created: bool  # False when --id named a workflow that already exists


def document(workflow: spec.Workflow) -> dict[str, Any]:
    """What the workflow row keeps of a validated file: enough to plan any job later."""
    return {
        "name": workflow.name,
        "description": workflow.description,
        "jobs": {
            name: {"type": job.type, "config": job.config, "needs": list(job.needs),
                   "description": job.description}
            for name, job in workflow.jobs.items()
        },
    }  # fmt: skip


def run(workflow: spec.Workflow, *, workflow_id: str | None = None) -> Started:
    """Record the workflow and its jobs, start every job that needs nothing; idempotent
    with `workflow_id`. BrokerUnavailable leaves nothing recorded."""
    from taskchain.engine import owner
    from taskchain.engine.submit import new_id

    if workflow_id is not None and not _ID.fullmatch(workflow_id):
        raise InvalidInput(
            f"--id {workflow_id!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    settings = get_settings()
    runner = owner.token() if settings.embedded else None
    lease = owner.lease_until() if runner else None
    wf_id = workflow_id or new_id()
    workspace = str(settings.workspace.resolve())
    row = WorkflowRecord(
        id=wf_id, name=workflow.name, description=workflow.description or "",
        spec=document(workflow), source=workflow.source, workspace=workspace,
    )  # fmt: skip
    chains = [
        ChainRecord(
            id=new_id(),
            type=job.type,
            description=job.description or f"{workflow.name}: {name}",
            config=job.config,
            step_count=0,
            workflow_id=wf_id,
            job=name,
            workspace=workspace,
            submit_host=socket.gethostname(),
            runner=runner,
            runner_lease_expires_at=lease,
        )
        for name, job in workflow.jobs.items()
    ]
    with session(write=True) as s:
        if s.get(WorkflowRecord, wf_id) is not None:
            return Started(wf_id, created=False)
        if workflow_id is not None and s.get(ChainRecord, wf_id) is not None:
            raise InvalidInput(f"--id {wf_id!r}: a chain has that id")
        s.add(row)
        s.add_all(chains)
        s.flush()
        ready, _status = _advance(s, wf_id)
    if runner:
        owner.hold()
    try:
        _send(ready)
    except (BrokerUnavailable, KeyboardInterrupt):
        remove([wf_id])  # nothing half-done, as for submit
        raise
    return Started(wf_id, created=True)


def on_chain_finished(chain_id: str, *, app: Any = None) -> None:
    """Called after a step, and after a cancel: if the chain is a job that has finished,
    advance its workflow. One SELECT when it is not."""
    with session() as s:
        wf_id, status = wfstore.workflow_of(session=s, chain_id=chain_id)
    if wf_id is not None and status is not None and status.finished:
        advance(wf_id, app=app)


def after_step(chain_id: str, *, app: Any) -> None:
    """`on_chain_finished` for the step task: never fails the step, because the step is
    recorded already; a fan-in lost here is redone by the recovery sweep."""
    try:
        on_chain_finished(chain_id, app=app)
    except Exception:
        log.exception("fan-in after chain %s failed; the recovery sweep redoes it", chain_id)


def advance(workflow_id: str, *, app: Any = None) -> list[str]:
    """Apply the fan-in rule now; return the chain ids of the jobs it started."""
    with session(write=True) as s:
        ready, status = _advance(s, workflow_id)
    if status is not None:  # a workflow's watch wakes on it (`wait.Announcements`)
        announce(workflow_id, status)
    if ready and get_settings().embedded:
        from taskchain.engine import owner

        owner.hold()
    _send(ready, app=app)
    return ready


def sweep_stalled(app: Any = None) -> list[str]:
    """The recovery sweep's part: advance RUNNING workflows with no job under way."""
    with session() as s:
        stalled = wfstore.stalled(session=s)
    for wf_id in stalled:
        advance(wf_id, app=app)
    return stalled


def announce(workflow_id: str, status: Status) -> None:
    """Tell a workflow's watchers to look now, as a step's change does for a chain's."""
    from taskchain.engine import events

    events.publish(workflow_id, events.END if status.finished else f"-1:{status.value}")


def _advance(s: Session, workflow_id: str) -> tuple[list[str], Status | None]:
    """The jobs started and the workflow's status now (None: finished before, or gone)."""
    view = wfstore.get(session=s, workflow_id=workflow_id, lock=True)
    if view is None or view.workflow.status.finished:
        return [], None
    jobs_doc: dict[str, Any] = view.workflow.spec["jobs"]
    graph = Graph({name: job["needs"] for name, job in jobs_doc.items()})
    by_job = {c.job: c for c in view.jobs if c.job is not None}
    started: list[str] = []
    # Whoever starts a job runs it: this process when embedded (it may not be the one that
    # ran the workflow so far: a retry took it over), else the workers.
    runner = _runner()
    while True:
        states = {job: wfstore.job_state(chain) for job, chain in by_job.items()}
        decided = graph.advance(states)
        if not decided.start and not decided.skip:
            break
        now = utcnow()
        for job, reason in decided.skip.items():
            _finish_unstarted(s, by_job[job].id, Status.SKIPPED, reason)
        for job in decided.start:
            chain = by_job[job]
            try:
                config, steps = _plan(jobs_doc[job], chain, by_job, graph, job)
            except InvalidInput as exc:
                _finish_unstarted(s, chain.id, Status.FAILED, exc.message)
                continue
            for step in steps:
                step.chain_id = chain.id
            steps[0].dispatched_at = now
            res = s.execute(
                _unstarted(chain.id).values(config=config, step_count=len(steps), **runner)
            )
            if res.rowcount:  # type: ignore[attr-defined]
                s.add_all(steps)
                started.append(chain.id)
        s.flush()
        s.expire_all()
        by_job = {c.job: c for c in wfstore.jobs(session=s, workflow=view.workflow) if c.job}
    _settle(view.workflow, list(by_job.values()), states)
    s.add(view.workflow)
    return started, view.workflow.status


def _runner() -> dict[str, Any]:
    """The `runner` columns of a chain this process starts now (see `engine.owner`)."""
    from taskchain.engine import owner

    if not get_settings().embedded:
        return {"runner": None, "runner_lease_expires_at": None}
    return {"runner": owner.token(), "runner_lease_expires_at": owner.lease_until()}


def _unstarted(chain_id: str) -> Any:
    """An UPDATE of a job's chain that matches only while it has not started: a cancel that
    came first wins."""
    return (
        update(ChainRecord)
        .where(col(ChainRecord.id) == chain_id, col(ChainRecord.status) == Status.PENDING)
        .where(col(ChainRecord.step_count) == 0)
    )


def _finish_unstarted(s: Session, chain_id: str, status: Status, reason: str) -> None:
    now = utcnow()
    s.execute(_unstarted(chain_id).values(status=status, error=reason, finished_at=now))


def _plan(
    job_doc: dict[str, Any],
    chain: ChainRecord,
    by_job: dict[str, ChainRecord],
    graph: Graph,
    job: str,
) -> tuple[dict[str, Any], list[StepRecord]]:
    """A job's resolved config and its steps; InvalidInput (`job 'x': ...`) fails the job."""
    from taskchain.engine.submit import prepare

    outputs: dict[str, dict[str, Any]] = {}
    for ref in refs.find(job_doc["config"]):
        upstream = by_job.get(ref.job)
        if upstream is not None and upstream.status == Status.COMPLETED:
            outputs[ref.job] = output_values(upstream)
    try:
        resolved = refs.resolve(job_doc["config"], outputs)
        record, steps = prepare(chain.type, resolved, description=chain.description)
    except InvalidInput as exc:
        raise InvalidInput(f"job {job!r}: {exc.message}") from None
    return record.config, steps


def output_values(chain: ChainRecord) -> dict[str, Any]:
    """The named outputs of a COMPLETED job's chain (`{}` for a type that declares none)."""
    try:
        chain_type = get_type(chain.type)
        return dict(chain_type.output_values(chain_type.parse(chain.config), chain.result))
    except TaskchainError:
        return {}


def _settle(row: WorkflowRecord, chains: list[ChainRecord], states: dict[str, str]) -> None:
    status = Status(workflow_status(states.values()))
    now = utcnow()
    if status != Status.PENDING and row.started_at is None:
        row.started_at = min((c.started_at for c in chains if c.started_at), default=now)
    if status.finished:
        row.finished_at = now
        failed = [c for c in chains if c.status == Status.FAILED]
        if failed:
            row.error = f"job {failed[0].job!r} failed: {failed[0].error}"
    row.status = status


def _send(chain_ids: Iterable[str], *, app: Any = None) -> None:
    ids = list(chain_ids)
    if not ids:
        return
    from taskchain.engine import dispatch

    if app is not None:  # inside a worker: its own app, no embedded worker to start
        for chain_id in ids:
            dispatch.send_step(chain_id, 0, app=app)
        return
    with session() as s:
        steps = {st.chain_id: st for st in s.exec(_first_steps(ids)).all()}
    for chain_id in ids:
        step = steps[chain_id]
        dispatch.start(chain_id, 0, queue=step.queue, task_id=step.task_id)


def _first_steps(chain_ids: list[str]) -> Any:
    from sqlmodel import select

    return select(StepRecord).where(
        col(StepRecord.chain_id).in_(chain_ids), col(StepRecord.index) == 0
    )


def remove(workflow_ids: list[str]) -> None:
    """Delete workflows and their jobs' chains (steps go with their chains)."""
    with session(write=True) as s:
        wfstore.delete(session=s, workflow_ids=workflow_ids)


def cancel(workflow_id: str) -> bool:
    """Cancel every running job (as `cancel` does a chain), skip the jobs not yet started,
    and end the workflow CANCELLED. False when it had already finished."""
    from taskchain import core

    with session(write=True) as s:
        view = wfstore.get(session=s, workflow_id=workflow_id, lock=True)
        if view is None or view.workflow.status.finished:
            return False
        running = []
        for chain in view.jobs:
            if chain.status == Status.PENDING and chain.step_count == 0:
                _finish_unstarted(s, chain.id, Status.SKIPPED, "the workflow was cancelled")
            elif not chain.status.finished:
                running.append(chain.id)
        row = view.workflow
        row.status, row.finished_at, row.error = Status.CANCELLED, utcnow(), "cancelled by user"
        s.add(row)
    announce(workflow_id, Status.CANCELLED)
    for chain_id in running:  # the workflow has finished: their ends advance nothing
        core.cancel(chain_id, reason="cancelled with its workflow")
    return True


def retry(workflow_id: str) -> list[str]:
    """Run the FAILED, CANCELLED and SKIPPED jobs of a finished workflow again, as if new
    (their old steps are dropped); COMPLETED jobs keep their results and outputs. An
    orphaned workflow (its embedded `run` died) is taken over instead: its unfinished jobs
    go on here (`workflow_takeover`). Returns the chain ids of the jobs started now."""
    from taskchain.engine import dispatch, owner
    from taskchain.engine.workflow_takeover import Resumed, take_over

    runner = _runner()
    with session(write=True) as s:
        view = wfstore.get(session=s, workflow_id=workflow_id, lock=True)
        if view is None:
            raise InvalidInput(f"no workflow {workflow_id}")
        row = view.workflow
        resumed: list[Resumed] = []
        if wfstore.is_orphaned(view):
            resumed = take_over(s, view, runner)
        elif row.status in (Status.FAILED, Status.CANCELLED):
            _reset_blocked(s, view, runner)
        else:
            raise InvalidInput(
                f"workflow {workflow_id} is {row.status.value}: only FAILED, CANCELLED or "
                "orphaned workflows can be retried"
            )
        row.status, row.finished_at, row.error = Status.RUNNING, None, None
        s.add(row)
        s.flush()
        s.expire_all()
        ready, status = _advance(s, workflow_id)
    if status is not None:
        announce(workflow_id, status)
    if runner["runner"]:
        owner.hold()
    for step in resumed:
        dispatch.start(step.chain_id, step.index, queue=step.queue, task_id=step.task_id)
    _send(ready)
    return [step.chain_id for step in resumed] + ready


def _reset_blocked(s: Session, view: wfstore.WorkflowView, runner: dict[str, Any]) -> None:
    """The jobs a finished workflow's retry runs again, back to PENDING without steps."""
    jobs_doc = view.workflow.spec["jobs"]
    graph = Graph({name: job["needs"] for name, job in jobs_doc.items()})
    by_job = {c.job: c for c in view.jobs if c.job}
    again = graph.to_retry({job: c.status.value for job, c in by_job.items()})
    ids = [by_job[job].id for job in again]
    s.execute(delete(StepRecord).where(col(StepRecord.chain_id).in_(ids)))
    for job in again:
        s.execute(
            update(ChainRecord).where(col(ChainRecord.id) == by_job[job].id).values(
                status=Status.PENDING, step_count=0, config=jobs_doc[job]["config"],
                error=None, result=None, started_at=None, finished_at=None,
                cancel_requested=False, attempt=ChainRecord.attempt + 1, **runner,
            )
        )  # fmt: skip
