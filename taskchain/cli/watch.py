"""`taskchain watch`: follow one chain (or every active one) until it finishes.

On a terminal: a live table (see live.py). Otherwise (a pipe, NO_COLOR, TERM=dumb, CI): one
plain line per step change and a one-line summary; `--json`: one JSON object per change.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from taskchain.cli import output
from taskchain.errors import ChainNotFound, StoreUnavailable, TaskchainError
from taskchain.settings import get_settings
from taskchain.timeparse import parse_duration

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


class StillActive(TaskchainError):
    """`watch` without an id: --timeout passed while chains were still active."""

    exit_code = 124


def _interrupted(chain_id: str | None, *, owner: bool) -> Interrupted:
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


class _Lines:
    """Plain lines for what changed: a line per step that moved, a summary per finished chain."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.seen: dict[tuple[str, int], tuple[object, ...]] = {}

    def print(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)

    def steps(self, view: ChainView) -> None:
        from taskchain.cli import render
        from taskchain.store.models import Status

        for step in view.steps:
            if step.status in (Status.PENDING, Status.SKIPPED):  # nothing happened to it
                continue
            state, where = (step.status, step.attempts, step.progress), (view.chain.id, step.index)
            if self.seen.get(where) != state:
                self.seen[where] = state
                self.print(render.step_line(view.chain, step))


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
            final = wait.follow(chain_id, timeout=timeout, on_change=_emit_chain, owner=owner)
        elif show and _live_ok(stream):
            final = _follow_live(chain_id, console(), timeout, owner=owner)
            return core.exit_code(final.chain.status)
        else:
            on_change = _Lines(console()).steps if show else None
            final = wait.follow(chain_id, timeout=timeout, on_change=on_change, owner=owner)
    except KeyboardInterrupt:
        raise _interrupted(chain_id, owner=owner) from None
    if show and not json_lines:
        from taskchain.cli import render

        console().print(render.summary_line(final.chain), markup=False, highlight=False)
    elif not show and final.chain.status != Status.COMPLETED:
        from taskchain.cli import render

        # Quiet (`submit -q`): nothing but the id, unless the chain failed, which is an error.
        output.error(render.failure_line(final.chain))
    return core.exit_code(final.chain.status)


def wait_for(chain_id: str, *, timeout: float | None) -> ChainView:
    """`result --wait`: the live view on stderr when it is a terminal, silent otherwise."""
    from taskchain.engine import wait

    try:
        if _live_ok("stderr"):
            return _follow_live(chain_id, output.err(), timeout)
        return wait.follow(chain_id, timeout=timeout)
    except KeyboardInterrupt:
        raise _interrupted(chain_id, owner=False) from None


def _live_ok(stream: str) -> bool:
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


def _emit_chain(view: ChainView) -> None:
    output.emit_json(output.chain_json(view))


# ---- every active chain ------------------------------------------------------------------


def _state(view: ChainView) -> tuple[object, ...]:
    return (view.chain.status, tuple((s.status, s.attempts, s.progress) for s in view.steps))


def _settled(view: ChainView) -> bool:
    """Nothing more to wait for: finished, or orphaned (it moves again only if retried)."""
    from taskchain.store.queries import is_orphaned

    return view.chain.status.finished or is_orphaned(view.chain)


def follow_all(
    *,
    timeout: float | None,
    on_change: Callable[[list[ChainView], list[ChainView]], None],
    interval: float = 0.5,
) -> list[ChainView]:
    """Poll every PENDING/RUNNING chain (and those seen so, until they finish) until none is
    active; call `on_change(all_views, changed_views)`. Waits out brief store outages."""
    from taskchain.engine import wait

    start = time.monotonic()
    views: dict[str, ChainView] = {}
    orphans = _Orphans()
    polled = False
    outage = wait.Outage()
    while True:
        try:
            before = set(views)
            changed = orphans.sort(views, before, _poll_all(views))
            polled = True
            outage.ok()
        except StoreUnavailable as exc:
            # No store at the start: exit 4 at once. Lost on the way: wait it out a while.
            if not polled:
                raise
            outage.failed(exc)
            time.sleep(1.0)
            continue
        if changed:
            on_change(list(views.values()), changed)
        if all(_settled(v) for v in views.values()):
            return list(views.values())
        if timeout is not None and time.monotonic() - start >= timeout:
            active = sum(not _settled(v) for v in views.values())
            raise StillActive(f"{active} chain(s) still active after {timeout:g}s; they go on")
        time.sleep(interval)


class _Orphans:
    """Chains whose embedded runner died never finish, so `watch` must not wait on them: one
    orphaned when first seen is not watched (named once on stderr); one orphaned while
    watched counts as settled, and shows up as changed once so that its end is shown."""

    def __init__(self) -> None:
        self.passed: set[str] = set()
        self.reported: set[str] = set()

    def sort(
        self, views: dict[str, ChainView], before: set[str], changed: list[ChainView]
    ) -> list[ChainView]:
        from taskchain import core
        from taskchain.store.queries import is_orphaned

        for chain_id in set(views) - before:
            if is_orphaned(views[chain_id].chain):
                view = views.pop(chain_id)
                changed = [v for v in changed if v.chain.id != chain_id]
                if chain_id not in self.passed:
                    self.passed.add(chain_id)
                    output.say(f"not watched: {core.orphan_reason(view.chain)}")
        for chain_id, view in views.items():
            if chain_id not in self.reported and is_orphaned(view.chain):
                self.reported.add(chain_id)
                if all(v.chain.id != chain_id for v in changed):
                    changed.append(view)
        return changed


def _poll_all(views: dict[str, ChainView]) -> list[ChainView]:
    """Read the active chains into `views` (oldest first); return the views that changed."""
    from taskchain import core
    from taskchain.engine import wait

    active = core.list_chains(statuses=["PENDING", "RUNNING"], limit=None)
    tracked = [i for i, v in views.items() if not v.chain.status.finished]
    changed = []
    for chain_id in dict.fromkeys([*tracked, *(c.id for c in reversed(active))]):
        try:
            view = wait.read(chain_id)
        except ChainNotFound:  # deleted while watched: it no longer counts
            views.pop(chain_id, None)
            continue
        if chain_id not in views or _state(views[chain_id]) != _state(view):
            changed.append(view)
        views[chain_id] = view
    return changed


def watch_all(*, timeout: float | None, json_lines: bool) -> int:
    """Follow every active chain until none is; 0 if every one watched COMPLETED, else 1."""
    from taskchain.cli import render
    from taskchain.store.models import Status
    from taskchain.store.queries import is_orphaned

    console = output.out()
    since = datetime.now(UTC)
    try:
        if json_lines:
            views = follow_all(timeout=timeout, on_change=_emit_changed)
        elif _live_ok("stdout"):
            views = _watch_all_live(console, since, timeout)
        else:
            views = follow_all(timeout=timeout, on_change=_AllLines(console))
    except KeyboardInterrupt:
        raise _interrupted(None, owner=False) from None
    if not views:
        output.say("no active chains")
        return 0
    if not json_lines:
        line = render.board_summary(views)
        orphans = sum(is_orphaned(v.chain) for v in views)
        if orphans:
            line += f" ({orphans} of them orphaned: their runner died; taskchain retry ID)"
        console.print(line, markup=False, highlight=False)
    return 0 if all(v.chain.status == Status.COMPLETED for v in views) else 1


class _AllLines(_Lines):
    """Plain lines for `watch` without an id: a line when a chain first shows up, then as one."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.ids: set[str] = set()

    def __call__(self, _all: list[ChainView], changed: list[ChainView]) -> None:
        from taskchain import core
        from taskchain.cli import render
        from taskchain.store.queries import is_orphaned

        for view in changed:
            if view.chain.id not in self.ids:
                self.ids.add(view.chain.id)
                self.print(render.chain_line(view.chain))
            self.steps(view)
            if view.chain.status.finished:
                self.print(render.summary_line(view.chain))
            elif is_orphaned(view.chain):
                chain = view.chain
                self.print(f"{chain.id} {chain.type} ORPHANED: {core.orphan_detail(chain)}")


def _emit_changed(_all: list[ChainView], changed: list[ChainView]) -> None:
    for view in changed:
        _emit_chain(view)


def _watch_all_live(console: Console, since: datetime, timeout: float | None) -> list[ChainView]:
    from taskchain.cli import live, render

    ascii = console.options.ascii_only

    def draw(
        views: Sequence[ChainView], now: datetime, frame: int | None, rows: int | None
    ) -> Group:
        room = None if rows is None else max(3, rows - 6)
        return render.board(views, since=since, now=now, frame=frame, ascii=ascii, max_rows=room)

    def key(views: Sequence[ChainView], now: datetime, frame: int) -> object:
        return render.board_key(views, since=since, now=now, frame=frame)

    def poll(push: Callable[[Sequence[ChainView]], None]) -> list[ChainView]:
        return follow_all(timeout=timeout, on_change=lambda views, _changed: push(views))

    return live.run(console, poll, draw=draw, key=key)


def watch(
    chain_ref: Annotated[
        str | None,
        typer.Argument(metavar="ID", help="Chain id or unique prefix; none: every active chain."),
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(help="Give up after this long (90s, 5m) with exit 124.")
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="One JSON object per change (JSON Lines).")
    ] = False,
) -> None:
    """Follow a chain step by step until it finishes; exit 0 if it COMPLETED, 1 if not.

    On a terminal: a live table. Otherwise (or with NO_COLOR, TERM=dumb, CI): one line per
    step change and a summary line. Without an ID: every PENDING or RUNNING chain until none
    is left; exit 0 if all that were watched COMPLETED, else 1. Ctrl-C (exit 130) stops
    watching; the chain goes on.

    Example: taskchain watch 3f2a && echo done; taskchain watch --json | jq -c .status
    """
    from taskchain import core

    limit = parse_duration(timeout, option="--timeout") if timeout is not None else None
    if chain_ref is None:
        raise typer.Exit(watch_all(timeout=limit, json_lines=json))
    kind, chain_id = core.resolve_any(chain_ref)
    if kind == "workflow":
        from taskchain.cli.workflow_view import follow

        raise typer.Exit(
            follow(chain_id, timeout=limit, show=True, json_lines=json, to_stdout=True)
        )
    code = follow_chain(chain_id, timeout=limit, show=True, json_lines=json, to_stdout=True)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
