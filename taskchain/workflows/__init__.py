"""Workflows: jobs of any chain type wired by `needs`, validated whole, run on the chain engine.

Here today (no Celery, CLI or store inside): `spec` reads and validates a file, `graph` checks
needs and cycles and holds the fan-in rule, `refs` finds and resolves output references.

How the engine will run them (next round), on the store and steps that exist:
- Store: a `workflow` table (id, name, source text, status, created/started/finished_at,
  workspace) and two columns on `chain`: `workflow_id` (indexed, NULL for a plain chain) and
  `job` (its name). `run` records, in ONE transaction, the workflow and a PENDING chain per
  job with its config as written (references in it) and no steps yet, then starts the roots.
  `--id` is the workflow's id, idempotent as for `submit`.
- Start a job = `spec.prepare` (resolve references from upstream `output_values`, parse,
  check against the workspace as it is now), then plan its steps, store the resolved config
  and the steps, and dispatch step 0 as `submit` does. A `prepare` error FAILS that job
  (message recorded), which skips its dependents; nothing else.
- Fan-in: the transaction that completes a chain's last step (transitions.complete_step with
  last=True), or fails or cancels it, also reads the workflow's job statuses under a row lock
  on the workflow (SELECT ... FOR UPDATE; SQLite's writer lock), calls `Graph.advance`, marks
  `skip` jobs SKIPPED with the reason as their error, marks `start` jobs RUNNING-to-be (status
  PENDING, dispatched_at set) and sets the workflow's status (`graph.workflow_status`). The
  dispatch of started jobs happens after commit, as for steps; a crash in between leaves a
  dispatched_at without a message, which the recovery sweep already re-sends.
- Exactly once: each job is a chain, so steps keep their leases, heartbeats and takeover.
  `advance` is a function of statuses only, so the recovery sweep also calls it for every
  RUNNING workflow: a job whose needs completed while no worker recorded the fan-in (killed
  between commit and dispatch) is started then. Two callers at once are serialised by the
  workflow row lock; a job already started is no longer PENDING, so it never starts twice.
- Retry: `retry <workflow>` resets the jobs of `Graph.to_retry` (FAILED, CANCELLED, SKIPPED)
  to PENDING with their steps removed, keeps COMPLETED jobs and their outputs, and calls
  `advance`. `retry <job chain>` keeps today's meaning for that chain and then calls
  `advance` for its workflow when it completes.
- Cancel: `cancel <workflow>` cancels every RUNNING job (as `cancel` a chain) and marks the
  PENDING ones CANCELLED, in one transaction; the workflow ends CANCELLED.
- Reads: `status/result/list/stats/delete/watch` take a workflow id beside chain ids (ids
  share a namespace; prefixes are resolved across both). A workflow's result is
  `{job: output_values}`; `delete` removes its chains with it. Embedded mode runs the same
  transitions with the in-process worker until the workflow finishes.
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
