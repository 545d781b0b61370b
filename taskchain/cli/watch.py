"""`taskchain watch`: follow one chain (follow.py) or, without an id, every active chain, like
`top`, until none is left."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from taskchain.cli import output
from taskchain.cli.follow import Lines, emit_chain, follow_chain, interrupted, live_ok
from taskchain.errors import ChainNotFound, StoreUnavailable, TaskchainError
from taskchain.timeparse import parse_duration

if TYPE_CHECKING:
    from rich.console import Console, Group

    from taskchain.store.queries import ChainView


class StillActive(TaskchainError):
    """`watch` without an id: --timeout passed while chains were still active."""

    exit_code = 124


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
    fallback: float | None = None,
) -> list[ChainView]:
    """Follow every PENDING/RUNNING chain (and those seen so, until they finish) until none is
    active; call `on_change(all_views, changed_views)`. Waits out brief store outages.

    Distributed on Redis, workers announce every change (`wait.Announcements`): the chains
    announced are read again at once, and the store is searched for every active chain only
    every `fallback` seconds (new chains announce themselves when their first step starts).
    Without a channel, the store is searched every `interval` seconds."""
    from taskchain.engine import events, wait

    fallback = wait.FALLBACK if fallback is None else fallback
    start = time.monotonic()
    views: dict[str, ChainView] = {}
    orphans = _Orphans()
    polled = False
    outage = wait.Outage()
    feed = wait.Announcements.open()  # before the first read: no change slips between
    announced: set[str] | None = None  # None: search the store for every active chain
    search_at = 0.0
    try:
        while True:
            read_at = time.monotonic()
            try:
                before = set(views)
                if announced is None or read_at >= search_at:
                    found = _poll_all(views)
                    search_at = read_at + (interval if feed is None else fallback)
                else:
                    found = _reread(views, sorted(announced))
                changed = orphans.sort(views, before, found)
                polled = True
                outage.ok()
            except StoreUnavailable as exc:
                # No store at the start: exit 4 at once. Lost on the way: wait it out a while.
                if not polled:
                    raise
                outage.failed(exc)
                time.sleep(1.0)
                announced = None
                continue
            if changed:
                on_change(list(views.values()), changed)
            if all(_settled(v) for v in views.values()):
                return list(views.values())
            elapsed = time.monotonic() - start
            if timeout is not None and elapsed >= timeout:
                active = sum(not _settled(v) for v in views.values())
                raise StillActive(f"{active} chain(s) still active after {timeout:g}s; they go on")
            left = max(0.0, search_at - time.monotonic())
            if timeout is not None:
                left = min(left, timeout - elapsed)
            if feed is None:
                time.sleep(left)
                continue
            announced = feed.wait(left, not_before=read_at + events.MIN_GAP)
            if announced is None:  # the channel failed: poll from now on
                feed = None
    finally:
        if feed is not None:
            feed.close()


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

    active = core.list_chains(statuses=["PENDING", "RUNNING"], limit=None)
    tracked = [i for i, v in views.items() if not v.chain.status.finished]
    return _reread(views, [*tracked, *(c.id for c in reversed(active))])


def _reread(views: dict[str, ChainView], chain_ids: Iterable[str]) -> list[ChainView]:
    """Read these chains into `views`; return the views that changed. A chain announced that
    started and finished between two looks is shown too: it was active while watched."""
    from taskchain.engine import wait

    changed = []
    for chain_id in dict.fromkeys(chain_ids):
        try:
            view = wait.read(chain_id)
        except ChainNotFound:  # deleted while watched, or another store's, on a shared broker
            views.pop(chain_id, None)
            continue
        if chain_id not in views or _state(views[chain_id]) != _state(view):
            changed.append(view)
        views[chain_id] = view
    return changed


def watch_all(*, timeout: float | None, json_lines: bool) -> int:
    """Follow every active chain until none is; 0 if every one watched COMPLETED, else 1."""
    from taskchain.cli.lines import board_summary
    from taskchain.store.models import Status
    from taskchain.store.queries import is_orphaned

    console = output.out()
    since = datetime.now(UTC)
    try:
        if json_lines:
            views = follow_all(timeout=timeout, on_change=_emit_changed)
        elif live_ok("stdout"):
            views = _watch_all_live(console, since, timeout)
        else:
            views = follow_all(timeout=timeout, on_change=_AllLines(console))
    except KeyboardInterrupt:
        raise interrupted(None, owner=False) from None
    if not views:
        output.say("no active chains")
        return 0
    if not json_lines:
        line = board_summary(views)
        orphans = sum(is_orphaned(v.chain) for v in views)
        if orphans:
            line += f" ({orphans} of them orphaned: their runner died; taskchain retry ID)"
        console.print(line, markup=False, highlight=False)
    return 0 if all(v.chain.status == Status.COMPLETED for v in views) else 1


class _AllLines(Lines):
    """Plain lines for `watch` without an id: a line when a chain first shows up, then as one."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.ids: set[str] = set()

    def __call__(self, _all: list[ChainView], changed: list[ChainView]) -> None:
        from taskchain import core
        from taskchain.cli.lines import chain_line, summary_line
        from taskchain.store.queries import is_orphaned

        for view in changed:
            if view.chain.id not in self.ids:
                self.ids.add(view.chain.id)
                self.print(chain_line(view.chain))
            self.steps(view)
            if view.chain.status.finished:
                self.print(summary_line(view.chain))
            elif is_orphaned(view.chain):
                chain = view.chain
                self.print(f"{chain.id} {chain.type} ORPHANED: {core.orphan_detail(chain)}")


def _emit_changed(_all: list[ChainView], changed: list[ChainView]) -> None:
    for view in changed:
        emit_chain(view)


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
