"""Following one chain until it finishes: `watch ID`, `submit --wait`, `result --wait`, `retry`.

On a terminal: a live table (see live.py). Otherwise (a pipe, NO_COLOR, TERM=dumb, CI): one
plain line per step change and a one-line summary; `--json`: one JSON object per change.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from taskchain.cli import output
from taskchain.errors import TaskchainError
from taskchain.settings import get_settings

# The store, the engine and Rich are imported inside the functions that use them: `submit`,
# `result` and `manage` import this module, and `--help` must not load them.
if TYPE_CHECKING:
    from rich.console import Console, Group

    from taskchain.cli import live
    from taskchain.store.queries import ChainView

#: Lines a live frame needs besides the step rows: title, progress, table head, result, slack.
_FRAME_LINES = 8


class Interrupted(TaskchainError):
    exit_code = 130


def interrupted(chain_id: str | None, *, owner: bool) -> Interrupted:
    if chain_id is None:
        return Interrupted("interrupted; the chains go on (taskchain watch to follow them again)")
    if owner and get_settings().embedded:
        from taskchain import core

        # The chain runs in this process and dies with it: record that, rather than leave it
        # RUNNING forever. (The worker thread checks the flag before each step.)
        with contextlib.suppress(TaskchainError):  # the store is gone too: nothing to record
            core.cancel(chain_id, reason="interrupted (Ctrl-C) in the command running it")
        return Interrupted(
            f"interrupted; chain {chain_id} cancelled: in embedded mode it runs inside the "
            "command that submitted it"
        )
    return Interrupted(
        f"interrupted; chain {chain_id} goes on (follow it: taskchain watch {chain_id[:12]})"
    )


class Lines:
    """Plain lines for what changed: a line per step that moved, a summary per finished chain."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.seen: dict[tuple[str, int], tuple[object, ...]] = {}

    def print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)

    def steps(self, view: ChainView) -> None:
        from taskchain.cli.lines import step_line
        from taskchain.store.models import Status

        for step in view.steps:
            if step.status in (Status.PENDING, Status.SKIPPED):  # nothing happened to it
                continue
            state, where = (step.status, step.attempts, step.progress), (view.chain.id, step.index)
            if self.seen.get(where) != state:
                self.seen[where] = state
                self.print(step_line(view.chain, step))


def _live_draw(console: Console) -> live.Draw[ChainView]:
    from taskchain.cli import render

    ascii = console.options.ascii_only

    def draw(view: ChainView, now: datetime, frame: int | None, rows: int | None) -> Group:
        room = None if rows is None else max(3, rows - _FRAME_LINES)
        return render.live_view(view, now=now, frame=frame, ascii=ascii, max_rows=room)

    return draw


def _live_key(view: ChainView, now: datetime, frame: int) -> object:
    from taskchain.cli import render

    return render.live_key(view, now=now, frame=frame)


def follow_chain(
    chain_id: str,
    *,
    timeout: float | None,
    show: bool,
    json_lines: bool,
    to_stdout: bool = False,
    owner: bool = False,
) -> int:
    """Follow a chain, showing its changes; return its exit code (TimedOut raises 124).

    `show`: a live table on a terminal, plain lines otherwise; `to_stdout`: on stdout (watch)
    rather than stderr (submit); `owner`: this process runs the chain (embedded submit).
    """
    from taskchain import core
    from taskchain.engine import wait
    from taskchain.store.models import Status

    # Rich only when something is shown: `submit -q` of a chain that completes loads none.
    console = output.out if to_stdout else output.err
    stream = "stdout" if to_stdout else "stderr"
    try:
        if json_lines:
            final = wait.follow(chain_id, timeout=timeout, on_change=emit_chain, owner=owner)
        elif show and live_ok(stream):
            final = _follow_live(chain_id, console(), timeout, owner=owner)
            return core.exit_code(final.chain.status)
        else:
            on_change = Lines(console()).steps if show else None
            final = wait.follow(chain_id, timeout=timeout, on_change=on_change, owner=owner)
    except KeyboardInterrupt:
        raise interrupted(chain_id, owner=owner) from None
    if show and not json_lines:
        from taskchain.cli.lines import summary_line

        console().print(summary_line(final.chain), markup=False, highlight=False)
    elif not show and final.chain.status != Status.COMPLETED:
        from taskchain.cli.lines import failure_line

        # Quiet (`submit -q`): nothing but the id, unless the chain failed, which is an error.
        output.error(failure_line(final.chain))
    return core.exit_code(final.chain.status)


def wait_for(chain_id: str, *, timeout: float | None) -> ChainView:
    """`result --wait`: the live view on stderr when it is a terminal, silent otherwise."""
    from taskchain.engine import wait

    try:
        if live_ok("stderr"):
            return _follow_live(chain_id, output.err(), timeout)
        return wait.follow(chain_id, timeout=timeout)
    except KeyboardInterrupt:
        raise interrupted(chain_id, owner=False) from None


def live_ok(stream: str) -> bool:
    return not output.plain(sys.stdout if stream == "stdout" else sys.stderr)


def _follow_live(
    chain_id: str, console: Console, timeout: float | None, *, owner: bool = False
) -> ChainView:
    from taskchain.cli import live, render
    from taskchain.engine import wait

    first = wait.read(chain_id)
    if first.chain.status.finished:  # nothing will move: the final table, once
        console.print(render.live_view(first, ascii=console.options.ascii_only))
        return first
    return live.run(
        console,
        lambda push: wait.follow(chain_id, timeout=timeout, on_change=push, owner=owner),
        draw=_live_draw(console),
        key=_live_key,
    )


def emit_chain(view: ChainView) -> None:
    output.emit_json(output.chain_json(view))
