"""What the commands call: reads of the store by id prefix, deletes, cancels, and exit codes.

Reading commands stay cheap: nothing here imports Celery unless a chain must be cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskchain.errors import InvalidInput, TaskchainError
from taskchain.store import queries, tables
from taskchain.store.db import session
from taskchain.store.queries import ChainView, Stats, runner_label
from taskchain.store.tables import Status
from taskchain.timeparse import iso

if TYPE_CHECKING:
    from taskchain.store.models import ChainRecord
    from taskchain.store.workflow_model import WorkflowRecord
    from taskchain.store.workflows import WorkflowView


class Orphaned(TaskchainError):
    """Followed a chain whose embedded runner died: it will not finish until retried."""

    exit_code = 1

    def __init__(self, chain: ChainRecord) -> None:
        super().__init__(orphan_reason(chain))
        self.chain_id = chain.id


class WorkflowOrphaned(TaskchainError):
    """Followed a workflow whose embedded run died: it will not finish until retried."""

    exit_code = 1

    def __init__(self, view: WorkflowView) -> None:
        super().__init__(f"workflow {view.workflow.id} is orphaned: {workflow_orphan_detail(view)}")


def orphan_reason(chain: ChainRecord) -> str:
    """Why an orphaned chain stands still, and what to do: one line."""
    return f"chain {chain.id} is orphaned: {orphan_detail(chain)}"


def orphan_detail(chain: ChainRecord) -> str:
    who = runner_label(chain.runner or "?")
    return (
        f"its embedded runner ({who}) died (its lease expired at "
        f"{iso(chain.runner_lease_expires_at)}); resume it with: taskchain retry "
        f"{chain.workflow_id or chain.id}"  # a workflow's job resumes with its workflow
    )


def workflow_orphan_detail(view: WorkflowView) -> str:
    """Why an orphaned workflow (`store.workflows.is_orphaned`) stands still, and what to do."""
    from taskchain.store.workflows import dead_runner

    last = dead_runner(view)
    who = runner_label(last.runner or "?") if last else "?"
    expired = iso(last.runner_lease_expires_at) if last else None
    return (
        f"its embedded runner ({who}) died (its lease expired at {expired}); "
        f"resume it with: taskchain retry {view.workflow.id}"
    )


def _ref(ref: str) -> str:
    if not ref.strip():
        raise InvalidInput("a chain id (or a unique prefix of one) is required")
    return ref.strip()


def resolve(ref: str) -> str:
    with session() as s:
        return queries.resolve_id(session=s, ref=_ref(ref))


def get(ref: str) -> ChainView:
    with session() as s:
        chain_id = queries.resolve_id(session=s, ref=_ref(ref))
        return queries.get_chain(session=s, chain_id=chain_id)


def get_chain(chain_id: str) -> ChainView:
    """The chain of a full id (as `resolve_any` gives it), with its steps."""
    with session() as s:
        return queries.get_chain(session=s, chain_id=chain_id)


def list_chains(
    *,
    statuses: Sequence[str] = (),
    types: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 20,
    offset: int = 0,
) -> list[ChainRecord]:
    parsed = [parse_status(s) for s in statuses]
    if limit is not None and limit < 0:
        raise InvalidInput(f"--limit {limit}: must be 0 or more")
    if offset < 0:
        raise InvalidInput(f"--offset {offset}: must be 0 or more")
    with session() as s:
        return queries.list_chains(
            session=s, statuses=parsed, types=types, since=since, until=until,
            limit=limit, offset=offset,
        )  # fmt: skip


def stats() -> Stats:
    with session() as s:
        return queries.stats(session=s)


def workflow_stats() -> dict[str, int]:
    """Workflows per status (their jobs are counted among the chains by `stats`)."""
    with session() as s:
        return queries.workflow_counts(session=s)


def parse_status(text: str) -> Status:
    try:
        return Status(text.strip().upper())
    except ValueError:
        known = ", ".join(s.value for s in Status)  # SKIPPED: a workflow's job may end so
        raise InvalidInput(f"unknown status {text!r} (known: {known})") from None


def cancel(chain_id: str, *, reason: str = "cancelled by user", terminate: bool = False) -> bool:
    """Mark a chain CANCELLED so no further step starts, and revoke its queued steps."""
    with session(write=True) as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
        # Read before the UPDATE: it refreshes these very objects to their new statuses.
        unfinished = [step.task_id for step in view.steps if not step.status.finished]
        from taskchain.store import transitions

        cancelled = transitions.cancel_chain(session=s, chain_id=chain_id, reason=reason)
    if cancelled:
        from taskchain.engine.control import revoke

        revoke(unfinished, terminate=terminate)
        if view.chain.workflow_id is not None:  # a job: the jobs that need it are skipped
            from taskchain.engine import workflow

            workflow.on_chain_finished(chain_id)
    return cancelled


@dataclass(frozen=True)
class Doomed:
    """What a `delete` will remove, every id checked: plain chains, and workflows with the
    number of their jobs' chains (which go with them)."""

    chains: list[str]
    workflows: dict[str, int]


def to_delete(refs: Sequence[str]) -> Doomed:
    """Resolve chain and workflow ids or prefixes, all before anything is deleted. A
    workflow's job is refused unless its workflow goes too: a workflow is never left short
    of a job."""
    from taskchain.store import workflows as wfstore

    found = [resolve_any(ref) for ref in refs]
    flows = list(dict.fromkeys(i for kind, i in found if kind == "workflow"))
    chains = list(dict.fromkeys(i for kind, i in found if kind == "chain"))
    with session() as s:
        jobs = wfstore.owners(session=s, chain_ids=chains)
        counts = {wf: len(wfstore.job_chains(session=s, workflow_ids=[wf])) for wf in flows}
    for chain_id in chains:
        if chain_id in jobs and jobs[chain_id][0] not in counts:
            wf_id, job = jobs[chain_id]
            raise InvalidInput(
                f"chain {chain_id} is job {job!r} of workflow {wf_id}: delete the workflow "
                f"instead (taskchain delete {wf_id})"
            )
    return Doomed([c for c in chains if c not in jobs], counts)


def delete(doomed: Doomed) -> Doomed:
    """Delete what `to_delete` found: running chains and workflows are cancelled first, then
    every record goes in one transaction, then the chains' workspace folders."""
    from taskchain.store import workflows as wfstore

    with session() as s:
        running = [
            i for i in doomed.chains
            if (st := queries.chain_status(session=s, chain_id=i)) and not st.finished
        ]  # fmt: skip
        flows = [wfstore.get(session=s, workflow_id=wf) for wf in doomed.workflows]
        chain_spaces = [(i, _workspace(s, i)) for i in doomed.chains]
    for view in flows:
        if view is None:
            continue
        if not view.workflow.status.finished:
            from taskchain.engine import workflow

            workflow.cancel(view.workflow.id)  # cancels its running jobs too
        else:  # a job still ending after its workflow was cancelled
            running += [c.id for c in view.jobs if not c.status.finished]
    for chain_id in running:
        cancel(chain_id, reason="cancelled by delete")
    with session(write=True) as s:
        removed = wfstore.delete(session=s, workflow_ids=list(doomed.workflows))
        queries.delete_chains(session=s, chain_ids=doomed.chains)
    for chain_id, workspace in [*chain_spaces, *removed.jobs]:
        _remove_chain_files(chain_id, workspace)
    return doomed


def _workspace(s: Any, chain_id: str) -> str | None:
    from sqlalchemy import select

    c = tables.chain.c
    return s.execute(select(c.workspace).where(c.id == chain_id)).scalar()


def _remove_chain_files(chain_id: str, workspace: str | None) -> None:
    """The chain's own folder (tables its steps wrote), in the workspace it recorded or this
    process's one, if it has one."""
    import shutil

    from taskchain.store.prune import chain_folder

    folder = chain_folder(chain_id, workspace)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def exit_code(status: Status) -> int:
    """0 for COMPLETED, 1 for FAILED or CANCELLED (and 124 for unfinished, see the README)."""
    if status == Status.COMPLETED:
        return 0
    if status in (Status.FAILED, Status.CANCELLED):
        return 1
    return 124


# Workflows: an id names a chain or a workflow; a prefix matching one of each is ambiguous.


def resolve_any(ref: str) -> tuple[str, str]:
    """("chain" | "workflow", full id) for an id or unique prefix of either."""
    from taskchain.errors import AmbiguousId, ChainNotFound

    ref = _ref(ref)
    with session() as s:
        flows = queries.matching_ids(session=s, table=tables.workflow, ref=ref)
        if flows == [ref]:
            return "workflow", ref
        try:
            chains = [queries.resolve_id(session=s, ref=ref)]
        except ChainNotFound:
            chains = []
        except AmbiguousId as exc:
            chains = list(exc.matches)
    if ref in chains:
        return "chain", ref
    if len(flows) + len(chains) > 1:
        raise AmbiguousId(ref, flows + chains)
    if flows:
        return "workflow", flows[0]
    if chains:
        return "chain", chains[0]
    raise ChainNotFound(ref)


def get_workflow(workflow_id: str) -> WorkflowView:
    from taskchain.errors import ChainNotFound
    from taskchain.store import workflows as wfstore

    with session() as s:
        view = wfstore.get(session=s, workflow_id=workflow_id)
        if view is not None:
            view.done = wfstore.steps_done(s, workflow_id)
    if view is None:
        raise ChainNotFound(workflow_id)
    return view


def list_workflows(*, statuses: Sequence[str] = (), limit: int | None = 20) -> list[WorkflowRecord]:
    from taskchain.store import workflows as wfstore

    parsed = [parse_status(s) for s in statuses]
    with session() as s:
        return wfstore.list_workflows(session=s, statuses=parsed, limit=limit)


def workflow_outputs(view: WorkflowView) -> dict[str, Any]:
    """Each COMPLETED job's named outputs (`{job: {name: value}}`); other jobs: None."""
    from taskchain.engine.workflow import output_values

    return {
        chain.job or chain.id: output_values(chain) if chain.status == Status.COMPLETED else None
        for chain in view.jobs
    }
