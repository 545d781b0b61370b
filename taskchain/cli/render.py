"""Pure renderers: a chain (or a list, or stats) in, a Rich renderable out (plain lines:
lines.py).

Nothing here reads a clock, a terminal or the store: the live view's spinner frame, the time
and the room available are arguments, so every frame can be tested at a fixed width.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from taskchain.cli.lines import duration, result_summary, tally, value_text
from taskchain.core import orphan_detail
from taskchain.store.queries import ChainView, Stats, is_orphaned
from taskchain.store.tables import Status
from taskchain.timeparse import iso

if TYPE_CHECKING:  # what the read commands draw are rows that read like these (ChainView)
    from taskchain.store.models import ChainRecord, StepRecord

STYLES = {
    Status.PENDING: "dim",
    Status.RUNNING: "bold cyan",
    Status.COMPLETED: "green",
    Status.FAILED: "bold red",
    Status.CANCELLED: "yellow",
    Status.SKIPPED: "dim",
}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_SPINNER = "|/-\\"


def status_text(status: Status, *, frame: int | None = None, ascii: bool = False) -> Text:
    """A status word; while RUNNING and given a spinner `frame`, a spinner before it."""
    if status == Status.RUNNING and frame is not None:
        glyphs = ASCII_SPINNER if ascii else SPINNER
        return Text(f"{glyphs[frame % len(glyphs)]} {status.value}", style=STYLES[status])
    return Text(status.value, style=STYLES.get(status, ""))


def steps_table(
    steps: list[StepRecord],
    *,
    now: datetime | None = None,
    frame: int | None = None,
    ascii: bool = False,
    max_rows: int | None = None,
    live: bool = False,
    chain_type: str = "",
) -> Table:
    """One row per step. A `live` view (a terminal) keeps every row on one line (long cells
    end in `…`), turns a spinner (`frame`) and shows at most `max_rows` steps, around the
    current one. A result shows as its chain type's one-line summary."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=not live)
    for header, justify in (("#", "right"), ("step", "left"), ("queue", "left"),
                            ("status", "left"), ("tries", "right"), ("started", "left"),
                            ("time", "right"), ("result / error", "left")):  # fmt: skip
        flexible = header in ("step", "result / error")
        table.add_column(
            header,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=header == "status" or (live and not flexible),
            overflow="fold",
            max_width=32 if live and header == "step" else None,
            # Room for what a later frame puts there, so that the table does not jump.
            min_width=_LIVE_WIDTHS.get(header) if live else None,
        )
    shown, before, after = _window(steps, max_rows)
    if before:  # above the header and below the rows, so that they do not widen a column
        table.title, table.title_justify = Text(f"… {before} earlier step(s)", "dim"), "left"
    if after:
        table.caption, table.caption_justify = Text(f"… {after} more step(s)", "dim"), "left"
    for step in shown:
        table.add_row(
            str(step.index + 1),
            _cell(step.name, "", cut=live),
            step.queue,
            status_text(step.status, frame=frame, ascii=ascii),
            str(step.attempts),
            _clock(step.started_at),
            duration(step.started_at, step.finished_at, now=now),
            _outcome(step, chain_type, cut=live),
        )
    return table


_LIVE_WIDTHS = {"status": 9, "started": 8, "time": 5}


def _cell(text: str, style: str, *, cut: bool) -> Text:
    """A cell that, in a live view, stays on one line and ends in `…` when it has no room:
    its column may shrink (it wraps) but the text itself does not wrap."""
    if cut:
        return Text(text, style=style, no_wrap=True, overflow="ellipsis")
    return Text(text, style=style)


def _outcome(step: StepRecord, chain_type: str, *, cut: bool = False) -> Text:
    if step.status == Status.FAILED or (step.error and not step.status.finished):
        return _cell(step.error or "", "red", cut=cut)
    if step.status == Status.RUNNING and step.progress:
        return _cell(step.progress, "cyan", cut=cut)
    return _cell(result_summary(chain_type, step.result), "", cut=cut)


def _window(steps: list[StepRecord], max_rows: int | None) -> tuple[list[StepRecord], int, int]:
    """The steps to show in `max_rows` rows, around the first unfinished (or failed) step,
    and how many are hidden before and after."""
    if max_rows is None or len(steps) <= max_rows:
        return steps, 0, 0
    rows = max(1, max_rows - 2)  # two rows say what is hidden
    focus = next((i for i, s in enumerate(steps) if not s.status.finished), None)
    if focus is None:
        focus = next((i for i, s in enumerate(steps) if s.status == Status.FAILED), len(steps))
    start = max(0, min(focus - rows // 3, len(steps) - rows))
    return steps[start : start + rows], start, len(steps) - start - rows


def chain_status_text(
    chain: ChainRecord, *, now: datetime | None = None, frame: int | None = None,
    ascii: bool = False,
) -> Text:  # fmt: skip
    """The chain's status word, and ORPHANED after it when its embedded runner died."""
    if not is_orphaned(chain, now=now):
        return status_text(chain.status, frame=frame, ascii=ascii)
    text = status_text(chain.status)  # no spinner: nothing runs it
    text.append(" ORPHANED", style="bold red")
    return text


def chain_header(chain: ChainRecord, *, now: datetime | None = None) -> Text:
    text = Text()
    text.append(f"chain {chain.id}", style="bold")
    text.append(f"  {chain.type}  ")
    text.append_text(chain_status_text(chain, now=now))
    if chain.description:
        text.append(f"\n{chain.description}", style="italic")
    text.append(f"\ncreated {iso(chain.created_at)}")
    if chain.started_at:
        text.append(f"  ran {duration(chain.started_at, chain.finished_at, now=now)}")
    if chain.workspace:
        text.append(f"\nworkspace {chain.workspace} (submitted on {chain.submit_host or '?'})")
    return text


def chain_view(view: ChainView, *, now: datetime | None = None) -> Group:
    steps = steps_table(view.steps, now=now, chain_type=view.chain.type)
    parts: list[Any] = [chain_header(view.chain, now=now), steps]
    return Group(*parts, *_ending(view.chain))


def _ending(chain: ChainRecord) -> list[Text]:
    if chain.status == Status.COMPLETED:
        return [Text(f"result: {value_text(chain.result)}")]
    if chain.error:
        return [Text(f"error: {chain.error}", style="red")]
    if is_orphaned(chain):
        return [Text(f"orphaned: {orphan_detail(chain)}", style="red")]
    return []


def steps_done(steps: Sequence[StepRecord]) -> int:
    """Steps that ran to an end (COMPLETED, FAILED, CANCELLED); SKIPPED ones never ran."""
    return sum(1 for s in steps if s.status.finished and s.status != Status.SKIPPED)


def progress_bar(
    done: int, total: int, *, width: int = 24, ascii: bool = False, style: str = ""
) -> Text:
    """`done` of `total` as a bar of `width` cells: heavy line done, light line to do."""
    full = width if total <= 0 else min(width, round(width * done / total))
    bar = Text(("#" if ascii else "━") * full, style=style)
    bar.append(("-" if ascii else "─") * (width - full), style="dim")
    return bar


def elapsed(chain: ChainRecord, *, now: datetime | None = None) -> str:
    """Since the chain started (since it was submitted while it waits) until it finished."""
    return duration(chain.started_at or chain.created_at, chain.finished_at, now=now)


def live_view(
    view: ChainView,
    *,
    now: datetime | None = None,
    frame: int | None = None,
    ascii: bool = False,
    max_rows: int | None = None,
) -> Group:
    """What `watch ID` shows: header, progress bar, the steps, and the result once finished."""
    chain = view.chain
    title = Text()
    title.append(f"chain {chain.id}", style="bold")
    title.append(f"  {chain.type}  ")
    title.append_text(chain_status_text(chain, now=now))
    if chain.attempt > 1:
        title.append(f"  (attempt {chain.attempt})")
    parts: list[Any] = [title]
    if chain.description:
        parts.append(Text(chain.description, style="italic", overflow="ellipsis", no_wrap=True))
    total = chain.step_count or len(view.steps)
    done = steps_done(view.steps)
    bar = progress_bar(done, total, ascii=ascii, style=STYLES[chain.status])
    bar.append(f"  {done}/{total} steps  elapsed {elapsed(chain, now=now)}")
    parts.append(bar)
    parts.append(Text())
    table = steps_table(
        view.steps, now=now, frame=frame, ascii=ascii, max_rows=max_rows, live=True,
        chain_type=chain.type,
    )  # fmt: skip
    parts.append(table)
    return Group(*parts, *_ending(chain))


def live_key(view: ChainView, *, now: datetime, frame: int) -> tuple[object, ...]:
    """What changes in a live frame with time alone: the spinner and the clocks shown."""
    running = [s for s in view.steps if s.status == Status.RUNNING]
    spinning = frame if running else None
    clocks = [duration(s.started_at, None, now=now) for s in running]
    return (spinning, None if view.chain.status.finished else elapsed(view.chain, now=now), *clocks)


def board(
    views: Sequence[ChainView],
    *,
    since: datetime,
    now: datetime | None = None,
    frame: int | None = None,
    ascii: bool = False,
    max_rows: int | None = None,
) -> Group:
    """What `watch` without an id shows: one row per chain being watched, like `top`."""
    title = Text(f"watching {len(views)} chain(s)", style="bold")
    if views:
        title.append(f": {tally(views)}")
    title.append(f"  elapsed {duration(since, None, now=now)}")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for header in ("id", "type", "status", "progress", "step", "time", "result / error"):
        table.add_column(
            header,
            no_wrap=header not in ("type", "step", "result / error"),
            justify="right" if header == "time" else "left",
            max_width=24 if header in ("type", "step") else None,
        )
    shown = list(views) if max_rows is None else list(views)[-max_rows:]
    for v in shown:
        chain = v.chain
        total = chain.step_count or len(v.steps)
        done = steps_done(v.steps)
        progress = progress_bar(done, total, width=10, ascii=ascii, style=STYLES[chain.status])
        progress.append(f" {done}/{total}")
        outcome = (
            _cell(result_summary(chain.type, chain.result), "", cut=True)
            if chain.status == Status.COMPLETED
            else _cell(chain.error or "", "red", cut=True)
        )
        table.add_row(
            chain.id[:12],
            _cell(chain.type, "", cut=True),
            chain_status_text(chain, now=now, frame=frame, ascii=ascii),
            progress,
            _cell(_current_step(v), "", cut=True),
            elapsed(chain, now=now),
            outcome,
        )
    hidden = len(views) - len(shown)
    parts: list[Any] = [title, Text(), table]
    if hidden:
        parts.insert(1, Text(f"… {hidden} earlier chain(s) not shown", style="dim"))
    return Group(*parts)


def board_key(views: Sequence[ChainView], *, since: datetime, now: datetime, frame: int) -> object:
    spinning = any(v.chain.status == Status.RUNNING for v in views)
    clocks = tuple(elapsed(v.chain, now=now) for v in views if not v.chain.status.finished)
    return (frame if spinning else None, duration(since, None, now=now), clocks)


def _current_step(view: ChainView) -> str:
    for wanted in (Status.RUNNING, Status.FAILED, Status.CANCELLED):
        for step in view.steps:
            if step.status == wanted:
                return step.name
    if view.chain.status.finished:
        return ""
    return next((s.name for s in view.steps if s.status == Status.PENDING), "")


def chains_table(chains: list[ChainRecord], *, now: datetime | None = None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("id", "type", "status", "created", "time", "description"):
        table.add_column(header, no_wrap=header == "id")
    for chain in chains:
        table.add_row(
            chain.id,
            chain.type,
            chain_status_text(chain, now=now),
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


def workflow_stats_table(by_status: dict[str, int]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="workflows by status")
    table.add_column("status")
    table.add_column("count", justify="right")
    table.add_row("total", str(sum(by_status.values())))
    for status, count in by_status.items():
        table.add_row(status_text(Status(status)), str(count))
    return table


def _clock(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S") if moment else ""
