"""`watch WORKFLOW` on a terminal: the jobs drawn as a graph, in stages from left to right.

A job's stage is one more than its deepest need's, so every arrow points right and jobs with
no path between them that can run at the same time stand side by side. Each job is a card:
its status (a spinner while it runs), its name, its progress in steps, its time, and the jobs
it needs when they are not all in the stage just before it.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from taskchain.cli import lines, render
from taskchain.store import ChainRecord, Status
from taskchain.store.workflows import WorkflowView, job_state


def stages(view: WorkflowView) -> list[list[ChainRecord]]:
    """The jobs by stage, each stage in the file's order."""
    by_name = {chain.job or "": chain for chain in view.jobs}
    level: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in level:
            needs = [n for n in view.needs(name) if n in by_name and n not in seen]
            level[name] = 1 + max((depth(n, seen | {name}) for n in needs), default=-1)
        return level[name]

    columns: list[list[ChainRecord]] = []
    for name, chain in by_name.items():
        at = depth(name)
        columns.extend([] for _ in range(at + 1 - len(columns)))
        columns[at].append(chain)
    return columns


def card(
    view: WorkflowView, chain: ChainRecord, *, previous: set[str], now: datetime,
    frame: int | None,
) -> Text:  # fmt: skip
    """One line for a job (a second for its far needs, its error): name, status, steps done,
    time, result. A job started but not yet taken by a worker reads RUNNING, as the fan-in
    rule counts it, without a spinner: `queued`."""
    status = Status(job_state(chain))
    queued = status == Status.RUNNING and chain.started_at is None
    text = Text(chain.job or "", style="bold")
    text.append(" ").append_text(render.status_text(status, frame=None if queued else frame))
    facts = []
    if chain.step_count:
        facts.append(f"{view.done.get(chain.id, 0)}/{chain.step_count}")
    if queued:
        facts.append("queued")
    elif chain.started_at:
        facts.append(lines.duration(chain.started_at, chain.finished_at, now=now))
    if chain.status == Status.COMPLETED and chain.result is not None:
        facts.append(f"= {lines.result_summary(chain.type, chain.result)}")
    if facts:
        text.append(" " + " · ".join(facts), style="dim")
    needs = view.needs(chain.job or "")
    if needs and not set(needs) <= previous:
        shown = ", ".join(needs) if len(needs) <= 3 else f"{len(needs)} jobs"
        text.append(f"\n  ← {shown}", style="dim")
    if chain.error:
        text.append(f"\n  {chain.error}", style=render.STYLES.get(status, ""))
    return text


def _fitting(jobs: list[ChainRecord], room: int | None) -> tuple[list[ChainRecord], Text | None]:
    """The jobs of a stage that fit in `room` lines (running ones first), and a line that
    counts the rest by status; every job when `room` is None (the final frame)."""
    if room is None or len(jobs) <= room:
        return jobs, None
    keep = max(room - 1, 1)
    order = sorted(range(len(jobs)), key=lambda i: (job_state(jobs[i]) != "RUNNING", i))
    shown = sorted(order[:keep])
    counts: dict[str, int] = {}
    for i in order[keep:]:
        counts[job_state(jobs[i])] = counts.get(job_state(jobs[i]), 0) + 1
    rest = ", ".join(f"{n} {state}" for state, n in counts.items())
    return [jobs[i] for i in shown], Text(f"+ {len(order) - keep} more: {rest}", style="dim")


def graph(
    view: WorkflowView, *, now: datetime, frame: int | None, rows: int | None = None
) -> RenderableType:
    """The workflow's frame; `rows`: the terminal's lines, which a tall stage is cut to."""
    row = view.workflow
    head = Text(f"workflow {row.id[:12]} {row.name} ")
    head.append_text(render.status_text(row.status, frame=frame))
    if row.started_at:
        head.append(f"  {lines.duration(row.started_at, row.finished_at, now=now)}")
    room = None if rows is None else max(rows - 5, 3)  # head, borders, error, cursor
    grid = Table.grid(padding=(0, 1))
    cells: list[RenderableType] = []
    previous: set[str] = set()
    for number, jobs in enumerate(stages(view), 1):
        grid.add_column(vertical="top")
        shown, more = _fitting(jobs, room)
        cards: list[RenderableType] = [
            card(view, c, previous=previous, now=now, frame=frame) for c in shown
        ]
        if more is not None:
            cards.append(more)
        cells.append(Panel(Group(*cards), title=f"stage {number}", title_align="left"))
        previous = {c.job or "" for c in jobs}
    grid.add_row(*cells)
    parts: list[RenderableType] = [head, grid]
    if row.error:
        parts.append(Text(f"error: {row.error}"))
    return Group(*parts)
