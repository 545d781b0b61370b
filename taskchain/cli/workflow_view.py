"""A workflow on the terminal: status table, JSON, plain lines and the live view of `watch`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from taskchain import core
from taskchain.cli import lines, live, output, render
from taskchain.errors import StoreUnavailable, TimedOut
from taskchain.store import ChainRecord, Status
from taskchain.store.workflows import WorkflowView, is_orphaned, job_state
from taskchain.timeparse import iso


def workflow_json(view: WorkflowView) -> dict[str, Any]:
    row = view.workflow
    return {
        "id": row.id, "kind": "workflow", "name": row.name, "description": row.description,
        "status": row.status.value, "created_at": iso(row.created_at),
        "started_at": iso(row.started_at), "finished_at": iso(row.finished_at),
        "error": row.error, "source": row.source, "workspace": row.workspace,
        "jobs": [job_json(view, chain) for chain in view.jobs],
    }  # fmt: skip


def job_json(view: WorkflowView, chain: ChainRecord) -> dict[str, Any]:
    return {
        "name": chain.job, "chain_id": chain.id, "type": chain.type,
        "status": job_status(chain), "needs": view.needs(chain.job or ""),
        "step_count": chain.step_count, "started_at": iso(chain.started_at),
        "finished_at": iso(chain.finished_at), "error": chain.error,
    }  # fmt: skip


def job_status(chain: ChainRecord) -> str:
    """As the fan-in rule sees it: a job started but still queued reads RUNNING."""
    return job_state(chain)


def result_json(view: WorkflowView) -> dict[str, Any]:
    row = view.workflow
    return {"id": row.id, "status": row.status.value, "result": core.workflow_outputs(view),
            "error": row.error}  # fmt: skip


def table(view: WorkflowView, *, now: datetime | None = None) -> RenderableType:
    row = view.workflow
    head = Text(f"workflow {row.id} {row.name} ")
    head.append_text(render.status_text(row.status))
    if row.started_at:
        head.append(f"  {lines.duration(row.started_at, row.finished_at, now=now)}")
    jobs = Table(box=None, pad_edge=False)
    for column in ("job", "status", "needs", "chain", "steps", "time", "detail"):
        jobs.add_column(column)
    for chain in view.jobs:
        time_cell = lines.duration(chain.started_at, chain.finished_at, now=now)
        detail = chain.error or ""
        if chain.status == Status.COMPLETED:
            detail = lines.result_summary(chain.type, chain.result)
        jobs.add_row(
            chain.job or "", render.status_text(Status(job_status(chain))),
            _needs_cell(view.needs(chain.job or "")), chain.id[:12],
            str(chain.step_count or ""), time_cell if chain.started_at else "", detail,
        )  # fmt: skip
    parts: list[RenderableType] = [head, jobs]
    if row.error:
        parts.append(Text(f"error: {row.error}"))
    return Group(*parts)


def _needs_cell(needs: list[str]) -> str:
    """A wide fan-in would push every other column off the screen: count it instead."""
    return ", ".join(needs) if len(needs) <= 3 else f"{len(needs)} jobs"


def job_line(view: WorkflowView, chain: ChainRecord) -> str:
    """One plain line for a job change (watch and run when not on a terminal)."""
    line = f"{view.workflow.id[:12]} job {chain.job} {job_status(chain)} chain {chain.id[:12]}"
    if chain.status == Status.COMPLETED:
        line += f" result {lines.result_summary(chain.type, chain.result)}"
    elif chain.error:
        line += f": {chain.error}"
    return line


def summary_line(view: WorkflowView) -> str:
    row = view.workflow
    counts: dict[str, int] = {}
    for chain in view.jobs:
        counts[chain.status.value] = counts.get(chain.status.value, 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in counts.items())
    line = f"workflow {row.id} {row.name} {row.status.value}"
    if row.started_at:
        line += f" in {lines.duration(row.started_at, row.finished_at)}"
    return f"{line}: {len(view.jobs)} jobs ({tally})" + (f"; {row.error}" if row.error else "")


def _state(view: WorkflowView) -> tuple[object, ...]:
    """What a watcher is shown of each job; a change of any of it is drawn again. A job's
    start counts: a job the fan-in started reads RUNNING before a worker takes it (`queued`),
    and again when one has (it had stayed `queued` until its next change)."""
    jobs = tuple(
        (c.job, job_status(c), c.started_at is not None, c.step_count, c.error,
         view.done.get(c.id, 0))
        for c in view.jobs
    )  # fmt: skip
    return (view.workflow.status, jobs)


def poll(
    workflow_id: str,
    *,
    timeout: float | None,
    on_change: Callable[[WorkflowView], None] | None = None,
    interval: float = 0.25,
    fallback: float | None = None,
) -> WorkflowView:
    """Read the workflow until it has finished, calling `on_change` with every new state;
    store outages are waited out as every follower does (`wait.Outage`); an orphaned one (its
    embedded run died) raises `WorkflowOrphaned`.

    Distributed on Redis, it reads again as soon as one of its jobs' chains or the workflow
    announces a change (`wait.Announcements`), else every `fallback` seconds; without a
    channel it polls with a backoff up to `interval`."""
    from taskchain.engine import events, wait

    fallback = wait.FALLBACK if fallback is None else fallback
    start = time.monotonic()
    seen: object = None
    outage = wait.Outage()
    delay = 0.02
    feed = wait.Announcements.open()  # before the first read: no change slips between
    try:
        while True:
            read_at = time.monotonic()
            try:
                view = core.get_workflow(workflow_id)
                outage.ok()
            except StoreUnavailable as exc:
                outage.failed(exc)
                time.sleep(1.0)
                continue
            state = _state(view)
            if state != seen:
                seen = state
                if on_change is not None:
                    on_change(view)
            if view.workflow.status.finished:
                return view
            if is_orphaned(view):  # it moves again only when retried: as for a chain, exit 1
                raise core.WorkflowOrphaned(view)
            elapsed = time.monotonic() - start
            if timeout is not None and elapsed >= timeout:
                raise TimedOut(workflow_id, timeout)
            if feed is not None:
                left = fallback if timeout is None else min(fallback, timeout - elapsed)
                ids = {workflow_id, *(c.id for c in view.jobs)}
                if _announced(feed, ids, left, not_before=read_at + events.MIN_GAP) is not None:
                    continue
                feed = None  # the channel failed: poll from now on
            time.sleep(delay)
            delay = min(delay * 1.5, interval)
    finally:
        if feed is not None:
            feed.close()


def _announced(feed: Any, ids: set[str], left: float, *, not_before: float) -> bool | None:
    """Wait up to `left` seconds for a change of one of `ids` (True), ignoring other chains';
    None if the channel failed."""
    deadline = time.monotonic() + left
    while (remaining := deadline - time.monotonic()) > 0:
        got = feed.wait(remaining, not_before=not_before)
        if got is None or got & ids:
            return None if got is None else True
    return False


class _Lines:
    """Plain lines: one per job whose status changed."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown: dict[str, tuple[str, str | None]] = {}

    def __call__(self, view: WorkflowView) -> None:
        for chain in view.jobs:
            now = (job_status(chain), chain.error)
            if self.shown.get(chain.id) != now and (chain.id in self.shown or now[0] != "PENDING"):
                self.console.print(job_line(view, chain), markup=False, highlight=False)
            self.shown[chain.id] = now


def job_event(view: WorkflowView, chain: ChainRecord) -> dict[str, Any]:
    """`watch WORKFLOW --json`: one line for a job whose status (or error) changed."""
    from taskchain.engine.workflow import output_values

    status = job_status(chain)
    return {
        "id": view.workflow.id, "kind": "job", "job": chain.job, "chain_id": chain.id,
        "type": chain.type, "status": status, "needs": view.needs(chain.job or ""),
        "step_count": chain.step_count, "started_at": iso(chain.started_at),
        "finished_at": iso(chain.finished_at), "error": chain.error,
        "outputs": output_values(chain) if status == Status.COMPLETED.value else None,
    }  # fmt: skip


def workflow_event(view: WorkflowView) -> dict[str, Any]:
    """`watch WORKFLOW --json`: the workflow's line when its status changes; the last line of
    a watch is this one, with the finished status."""
    row = view.workflow
    counts: dict[str, int] = {}
    for chain in view.jobs:
        counts[job_status(chain)] = counts.get(job_status(chain), 0) + 1
    return {
        "id": row.id, "kind": "workflow", "name": row.name, "status": row.status.value,
        "created_at": iso(row.created_at), "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at), "error": row.error,
        "jobs": len(view.jobs), "by_status": counts,
    }  # fmt: skip


class _JsonLines:
    """JSON Lines: every job once when first seen, then a line per job change; a workflow
    line when the workflow's status changes, after its jobs' lines, so the last line says
    how it ended."""

    def __init__(self) -> None:
        self.shown: dict[str, tuple[str, str | None]] = {}
        self.status: str | None = None

    def __call__(self, view: WorkflowView) -> None:
        for chain in view.jobs:
            now = (job_status(chain), chain.error)
            if self.shown.get(chain.id) != now:
                self.shown[chain.id] = now
                output.emit_json(job_event(view, chain))
        if view.workflow.status.value != self.status:
            self.status = view.workflow.status.value
            output.emit_json(workflow_event(view))


def _live(console: Console, workflow_id: str, timeout: float | None) -> WorkflowView:
    def feed(push: Callable[[WorkflowView], None]) -> WorkflowView:
        return poll(workflow_id, timeout=timeout, on_change=push)

    from taskchain.cli.workflow_graph import graph

    def draw(view: WorkflowView, now: datetime, frame: int | None, rows: int | None) -> Any:
        return graph(view, now=now, frame=frame, rows=rows)

    def key(view: WorkflowView, now: datetime, frame: int) -> Hashable:
        # the spinner turns and the running jobs' clocks move with time alone
        return (_state(view), now.second, None if view.workflow.status.finished else frame)

    return live.run(console, feed, draw=draw, key=key)


def follow(
    workflow_id: str, *, timeout: float | None, show: bool, json_lines: bool, to_stdout: bool
) -> int:
    """Follow a workflow to its end, showing job changes; return its exit code."""
    console = output.out() if to_stdout else output.err()
    stream_plain = output.plain() if to_stdout else output.plain(sys.stderr)
    try:
        if json_lines:
            final = poll(workflow_id, timeout=timeout, on_change=_JsonLines())
        elif show and not stream_plain:
            final = _live(console, workflow_id, timeout)
        else:
            final = poll(workflow_id, timeout=timeout, on_change=_Lines(console) if show else None)
    except KeyboardInterrupt:
        output.error(f"interrupted: workflow {workflow_id} goes on")
        raise SystemExit(130) from None
    if show and not json_lines:
        console.print(summary_line(final), markup=False, highlight=False)
    elif not show and final.workflow.status != Status.COMPLETED:
        row = final.workflow
        output.error(f"workflow {workflow_id} {row.status.value}: {row.error}")
    return core.exit_code(final.workflow.status)


# ---- the commands' workflow branches -----------------------------------------------------


def show_status(workflow_id: str, *, json: bool) -> int:
    """The workflow's table (`--json`: its document, with `orphaned`); an orphaned one (its
    embedded `run` died) says so last, with how to resume it, as a chain's status does."""
    view = core.get_workflow(workflow_id)
    orphaned = is_orphaned(view)
    if json:
        output.emit_json({**workflow_json(view), "orphaned": orphaned})
        return 0
    parts: list[RenderableType] = [table(view)]
    if orphaned:
        parts.append(Text(f"orphaned: {core.workflow_orphan_detail(view)}", style="red"))
    output.out().print(Group(*parts))
    return 0


def show_result(workflow_id: str, *, json: bool, wait: bool, timeout: float | None) -> int:
    """Each job's outputs; exit as for a chain's result."""
    view = core.get_workflow(workflow_id)
    if wait and not view.workflow.status.finished:
        view = poll(workflow_id, timeout=timeout)
    row = view.workflow
    if json:
        output.emit_json(result_json(view))
    elif row.status == Status.COMPLETED:
        output.emit_json(core.workflow_outputs(view))
    elif row.status.finished:
        output.say(f"workflow {row.id} {row.status.value}: {row.error or 'no result'}")
    else:
        output.say(f"workflow {row.id} is {row.status.value}: no result yet (use --wait)")
    return core.exit_code(row.status)


def show_list(*, statuses: list[str], limit: int | None, json: bool) -> None:
    rows = core.list_workflows(statuses=statuses, limit=limit)
    if json:
        output.emit_json([
            {"id": r.id, "kind": "workflow", "name": r.name, "status": r.status.value,
             "jobs": len(r.spec.get("jobs", {})), "created_at": iso(r.created_at),
             "finished_at": iso(r.finished_at)}
            for r in rows
        ])  # fmt: skip
        return
    if not rows:
        output.say("no workflows")
        return
    listing = Table(box=None, pad_edge=False)
    for column in ("id", "name", "status", "jobs", "created", "time"):
        listing.add_column(column)
    for r in rows:
        listing.add_row(
            r.id[:12], r.name, render.status_text(r.status), str(len(r.spec.get("jobs", {}))),
            iso(r.created_at) or "", lines.duration(r.started_at, r.finished_at)
            if r.started_at else "",
        )  # fmt: skip
    output.out().print(listing)


def cancel_workflow(workflow_id: str) -> None:
    from taskchain.engine import workflow

    if workflow.cancel(workflow_id):
        output.say(f"cancelled workflow {workflow_id}")
    else:
        row = core.get_workflow(workflow_id).workflow
        output.say(f"workflow {workflow_id} already {row.status.value}; nothing to cancel")


def retry_workflow(workflow_id: str, *, wait: bool, quiet: bool) -> int:
    """Retry a finished workflow's failed jobs, or take over an orphaned one; embedded (or
    with --wait) follow it to its end."""
    from taskchain.engine import workflow
    from taskchain.settings import get_settings
    from taskchain.store.workflows import is_orphaned

    orphaned = is_orphaned(core.get_workflow(workflow_id))
    started = workflow.retry(workflow_id)
    if not quiet and orphaned:
        output.say(f"taking over orphaned workflow {workflow_id}: {len(started)} job(s) resumed")
    elif not quiet:
        output.say(f"retrying workflow {workflow_id}: {len(started)} job(s) started")
    if get_settings().embedded or wait:
        return follow(workflow_id, timeout=None, show=not quiet, json_lines=False,
                      to_stdout=False)  # fmt: skip
    return 0
