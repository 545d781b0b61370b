"""Pure renderers: a chain (or a list, or stats) in, a Rich renderable or a plain line out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from taskchain.store.models import ChainRecord, Status, StepRecord
from taskchain.store.queries import ChainView, Stats
from taskchain.timeparse import iso

STYLES = {
    Status.PENDING: "dim",
    Status.RUNNING: "bold cyan",
    Status.COMPLETED: "green",
    Status.FAILED: "bold red",
    Status.CANCELLED: "yellow",
    Status.SKIPPED: "dim",
}


def status_text(status: Status) -> Text:
    return Text(status.value, style=STYLES.get(status, ""))


def value_text(value: Any) -> str:
    """A result as one line: scalars bare, the rest as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def duration(start: datetime | None, end: datetime | None, *, now: datetime | None = None) -> str:
    if start is None:
        return ""
    seconds = ((end or now or datetime.now(UTC)) - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def steps_table(steps: list[StepRecord], *, now: datetime | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header, justify in (("#", "right"), ("step", "left"), ("queue", "left"),
                            ("status", "left"), ("tries", "right"), ("started", "left"),
                            ("time", "right"), ("result / error", "left")):  # fmt: skip
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for step in steps:
        if step.status == Status.FAILED or (step.error and not step.status.finished):
            outcome = Text(step.error or "", style="red")
        elif step.status == Status.RUNNING and step.progress:
            outcome = Text(step.progress, style="cyan")
        else:
            outcome = Text(value_text(step.result))
        table.add_row(
            str(step.index + 1),
            step.name,
            step.queue,
            status_text(step.status),
            str(step.attempts),
            _clock(step.started_at),
            duration(step.started_at, step.finished_at, now=now),
            outcome,
        )
    return table


def chain_header(chain: ChainRecord, *, now: datetime | None = None) -> Text:
    text = Text()
    text.append(f"chain {chain.id}", style="bold")
    text.append(f"  {chain.type}  ")
    text.append_text(status_text(chain.status))
    if chain.description:
        text.append(f"\n{chain.description}", style="italic")
    text.append(f"\ncreated {iso(chain.created_at)}")
    if chain.started_at:
        text.append(f"  ran {duration(chain.started_at, chain.finished_at, now=now)}")
    return text


def chain_view(view: ChainView, *, now: datetime | None = None) -> Group:
    parts: list[Any] = [chain_header(view.chain, now=now), steps_table(view.steps, now=now)]
    if view.chain.status == Status.COMPLETED:
        parts.append(Text(f"result: {value_text(view.chain.result)}"))
    elif view.chain.error:
        parts.append(Text(f"error: {view.chain.error}", style="red"))
    return Group(*parts)


def chains_table(chains: list[ChainRecord], *, now: datetime | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("id", "type", "status", "created", "time", "description"):
        table.add_column(header, no_wrap=header == "id")
    for chain in chains:
        table.add_row(
            chain.id,
            chain.type,
            status_text(chain.status),
            iso(chain.created_at) or "",
            duration(chain.started_at, chain.finished_at, now=now),
            chain.description,
        )
    return table


def stats_table(stats: Stats) -> Group:
    by_status = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="chains by status")
    by_status.add_column("status")
    by_status.add_column("count", justify="right")
    by_status.add_row("total", str(stats.total))
    for status, count in stats.by_status.items():
        by_status.add_row(status_text(Status(status)), str(count))
    by_type = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="chains by type")
    by_type.add_column("type")
    columns = ["total", *stats.by_status]
    for column in columns:
        by_type.add_column(column.lower(), justify="right")
    for type_, counts in stats.by_type.items():
        by_type.add_row(type_, *(str(counts.get(c, 0)) for c in columns))
    times = " ".join(
        f"{k}={'-' if v is None else (int(v) if k == 'count' else f'{v:g}s')}"
        for k, v in stats.durations.items()
    )
    return Group(by_status, by_type, Text(f"durations of finished chains: {times}"))


def step_line(chain: ChainRecord, step: StepRecord) -> str:
    """One plain line for a step change (watch when not on a terminal)."""
    detail = step.error if step.status == Status.FAILED else value_text(step.result)
    if step.status == Status.RUNNING:
        detail = step.progress or ""
    line = (
        f"{chain.id[:12]} step {step.index + 1}/{chain.step_count} {step.name} {step.status.value}"
    )
    if step.attempts > 1:
        line += f" (attempt {step.attempts})"
    return f"{line} {detail}".rstrip()


def summary_line(chain: ChainRecord) -> str:
    line = f"{chain.id} {chain.type} {chain.status.value}"
    if chain.started_at:
        line += f" in {duration(chain.started_at, chain.finished_at)}"
    if chain.status == Status.COMPLETED:
        return f"{line}: result {value_text(chain.result)}"
    return f"{line}: {chain.error}" if chain.error else line


def _clock(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S") if moment else ""
