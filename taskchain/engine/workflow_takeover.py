"""`retry` on an orphaned workflow: the embedded `taskchain run` that ran it died (SIGKILL, a
lost machine), so its jobs stand still under a runner lease nobody renews.

The retrying process (or, when a broker is set, the workers) takes over every unfinished
job, each by a conditional UPDATE that matches only while the dead runner's lease has
expired, so two retries, or a runner that was only frozen and comes back, cannot both win:
- a started job goes on from its first unfinished step, as `retry` resumes an orphaned chain
  (`transitions.reopen_chain`: completed steps keep their results, the others get new task
  ids and no holder, so the dead process's late writes match nothing);
- a job not started yet changes hands only; the workflow's fan-in starts it when its needs
  have completed.
Finished jobs stay as they are: a FAILED one is retried once the workflow has ended FAILED.
No Celery in here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col

from taskchain.errors import InvalidInput
from taskchain.settings import get_settings
from taskchain.store import ChainRecord, Status, queries, transitions
from taskchain.store.models import utcnow
from taskchain.store.workflows import WorkflowView


@dataclass(frozen=True)
class Resumed:
    """A taken-over job's chain goes on from step `index`: send it under `task_id`."""

    chain_id: str
    index: int
    queue: str
    task_id: str


def take_over(s: Session, view: WorkflowView, runner: dict[str, Any]) -> list[Resumed]:
    """Hand the orphaned workflow's unfinished jobs to `runner` (the `runner` columns of
    the new holder); the steps to send once committed. InvalidInput when another process
    took a job first, or (embedded) when this process's workspace is not the job's."""
    from taskchain.engine.submit import workspace_mismatch
    from taskchain.engine.workflow import _unstarted

    settings = get_settings()
    changed = InvalidInput(f"workflow {view.workflow.id} changed while being retried; look again")
    resumed: list[Resumed] = []
    for chain in view.jobs:
        if chain.status.finished:
            continue
        if chain.step_count == 0:
            expired = col(ChainRecord.runner_lease_expires_at) < utcnow()
            if not _changed(s.execute(_unstarted(chain.id).where(expired).values(**runner))):
                raise changed
            continue
        if settings.embedded:  # this process will run its steps: refuse now, as chains do
            mismatch = workspace_mismatch(chain, settings.workspace, who="this process")
            if mismatch:
                raise InvalidInput(mismatch)
        steps = queries.get_chain(session=s, chain_id=chain.id).steps
        new_ids = {st.index: str(uuid.uuid4()) for st in steps if st.status != Status.COMPLETED}
        if not new_ids:
            continue
        first = transitions.reopen_chain(
            session=s, chain_id=chain.id, new_task_ids=new_ids, runner=runner["runner"],
            runner_lease_until=runner["runner_lease_expires_at"],
        )  # fmt: skip
        if first is None:
            raise changed
        resumed.append(Resumed(chain.id, first, steps[first].queue, new_ids[first]))
    return resumed


def _changed(result: Any) -> bool:
    return bool(result.rowcount)
