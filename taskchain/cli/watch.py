"""`taskchain watch`: follow a chain until it finishes, then exit with its code."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from taskchain import core
from taskchain.cli import output, render
from taskchain.engine.wait import follow
from taskchain.errors import TaskchainError
from taskchain.store.queries import ChainView
from taskchain.timeparse import parse_duration


class Interrupted(TaskchainError):
    exit_code = 130


def follow_chain(
    chain_id: str, *, timeout: float | None, show: bool, json_lines: bool, to_stdout: bool = False
) -> int:
    """Follow a chain, printing changes; return its exit code (TimedOut raises 124)."""
    console: Console = output.out() if to_stdout else output.err()
    seen: dict[int, tuple[object, ...]] = {}

    def on_change(view: ChainView) -> None:
        if json_lines:
            output.emit_json(output.chain_json(view))
            return
        if not show:
            return
        for step in view.steps:
            key = (step.status, step.attempts, step.progress)
            if seen.get(step.index) != key and step.status.value not in ("PENDING", "SKIPPED"):
                seen[step.index] = key
                console.print(render.step_line(view.chain, step), markup=False, highlight=False)

    try:
        final = follow(chain_id, timeout=timeout, on_change=on_change)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; chain {chain_id} goes on (follow it: taskchain watch {chain_id[:12]})"
        ) from None
    if not json_lines and (show or final.chain.status.value != "COMPLETED"):
        console.print(render.summary_line(final.chain), markup=False, highlight=False)
    return core.exit_code(final.chain.status)


def watch(
    chain_ref: Annotated[str, typer.Argument(metavar="ID", help="Chain id or unique prefix.")],
    timeout: Annotated[
        str | None, typer.Option(help="Give up after this long (90s, 5m) with exit 124.")
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="One JSON object per change (JSON Lines).")
    ] = False,
) -> None:
    """Follow a chain step by step until it finishes; exit 0 if it COMPLETED, 1 if not.

    Example: taskchain watch 3f2a && echo done
    """
    limit = parse_duration(timeout, option="--timeout") if timeout is not None else None
    chain_id = core.resolve(chain_ref)
    code = follow_chain(chain_id, timeout=limit, show=True, json_lines=json, to_stdout=True)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)
