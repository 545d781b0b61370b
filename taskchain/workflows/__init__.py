"""Workflows: jobs of any chain type wired by `needs`, validated whole, run on the chain engine.

Here now, with no Celery, CLI or store inside: `spec` reads and validates a file, `graph` checks
needs and cycles and holds the fan-in rule, `refs` finds and resolves output references.

The engine side is built as planned below (taskchain/engine/workflow.py, store/workflows.py),
with three differences: the fan-in runs in its own transaction right after the step task
records a job's end (and after a cancel), not inside that transaction, so a fan-in lost with a
killed worker is redone by the recovery sweep (`sweep_stalled`); `cancel <workflow>` marks the
jobs not yet started SKIPPED ("the workflow was cancelled"); and `retry <workflow>` drops the
retried jobs' old steps. The plan:
- Store: a `workflow` table (id, name, description, file text, status, created/started/
  finished_at, workspace) and two columns on `chain`: `workflow_id` (indexed; NULL for a
  plain chain) and `job`. `run` records in ONE transaction the workflow and a PENDING chain
  per job, config as written (references in it), no steps; then starts what `advance` says.
  `--id` names the workflow, idempotent as in `submit`. Chain status gains SKIPPED.
- Starting a job: `spec.prepare` (resolve references from the upstream chains'
  `output_values`, parse, check against the workspace as it is now), plan the steps, store
  the resolved config and steps, dispatch step 0 as `submit` does. A `prepare` error FAILS
  that job with the message; the fan-in rule then skips what needs it.
- Fan-in: the transaction that ends a job's chain (complete_step with last=True, fail_step,
  cancel) locks the workflow row (SELECT ... FOR UPDATE; SQLite has one writer anyway),
  reads its jobs' statuses, calls `Graph.advance`, marks `skip` SKIPPED with the reason as
  error, prepares `start` jobs and sets the workflow status (`graph.workflow_status`). The
  messages go out after commit with `dispatched_at` set, as for steps, so a crash between
  commit and send is the lost-message case the recovery sweep already re-sends.
- Exactly once: a job is a chain, so its steps keep leases, heartbeats and takeover as now.
  `advance` depends on statuses only, so the recovery sweep also calls it for each RUNNING
  workflow (a fan-in lost with a killed process happens then); the row lock serialises two
  callers, and a started job is no longer PENDING, so it never starts twice.
- Retry: `retry <workflow>` resets `Graph.to_retry` jobs (FAILED, CANCELLED, SKIPPED) to
  PENDING without steps, keeps COMPLETED jobs and their outputs, and calls `advance`.
  `retry <job chain>` keeps its chain meaning, then its end calls `advance` as any end does.
- Cancel: `cancel <workflow>` cancels the RUNNING jobs as `cancel` does a chain and marks the
  PENDING ones CANCELLED, in one transaction; the workflow ends CANCELLED.
- Reads: status/result/list/stats/delete/watch accept a workflow id (ids and prefixes are
  looked up in both tables); a workflow's result is `{job: output_values}`; delete takes its
  chains with it. Embedded mode runs the same transitions in-process until the workflow ends.
"""

from __future__ import annotations

from taskchain.workflows.graph import Advance, Graph, GraphError, workflow_status
from taskchain.workflows.refs import BadReference, Reference, find, resolve
from taskchain.workflows.spec import Job, Workflow, load, prepare, validate

__all__ = [
    "Advance",
    "BadReference",
    "Graph",
    "GraphError",
    "Job",
    "Reference",
    "Workflow",
    "find",
    "load",
    "prepare",
    "resolve",
    "validate",
    "workflow_status",
]
