"""Where output goes: data on stdout, messages on stderr; plain when not on a terminal."""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from typing import TYPE_CHECKING, Any, TextIO

from taskchain.timeparse import iso

if TYPE_CHECKING:  # imported where used: `--help` loads neither Rich's console nor the store
    from rich.console import Console

    from taskchain.store.models import ChainRecord, StepRecord
    from taskchain.store.queries import ChainView, Stats

SCHEMA_VERSION = 1


def plain(stream: TextIO | None = None) -> bool:
    """No colour, no live redraw, no truncation: `stream` (default stdout) is not a TTY, or
    NO_COLOR, TERM=dumb or CI is set."""
    target = sys.stdout if stream is None else stream
    try:
        terminal = target.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        terminal = False
    return (
        not terminal
        or "NO_COLOR" in os.environ
        or os.environ.get("TERM") == "dumb"
        or bool(os.environ.get("CI"))
    )


@cache
def _console(stderr: bool, is_plain: bool, stream_id: int) -> Console:
    from rich.console import Console

    if is_plain:
        # Wide enough that no cell is ever cut; no colour, no markup surprises.
        return Console(stderr=stderr, no_color=True, highlight=False, width=10_000, soft_wrap=True)
    return Console(stderr=stderr, highlight=False)


def out() -> Console:
    return _console(False, plain(), id(sys.stdout))


def err() -> Console:
    return _console(True, plain(sys.stderr), id(sys.stderr))


def say(message: str) -> None:
    """A message for the person (stderr), never mixed into data."""
    err().print(message, markup=False, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """The one form of an error line: `taskchain: error: ...` on stderr."""
    sys.stderr.write(f"taskchain: error: {message}\n")
    sys.stderr.flush()


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def step_json(step: StepRecord) -> dict[str, Any]:
    return {
        "index": step.index,
        "name": step.name,
        "queue": step.queue,
        "status": step.status.value,
        "attempts": step.attempts,
        "task_id": step.task_id,
        "started_at": iso(step.started_at),
        "finished_at": iso(step.finished_at),
        "duration": _seconds(step.started_at, step.finished_at),
        "progress": step.progress,
        "result": step.result,
        "error": step.error,
    }


def chain_json(view: ChainView) -> dict[str, Any]:
    return {
        **chain_summary_json(view.chain),
        "config": view.chain.config,
        "steps": [step_json(s) for s in view.steps],
    }


def chain_summary_json(chain: ChainRecord) -> dict[str, Any]:
    from taskchain.store.queries import is_orphaned

    return {
        "schema_version": SCHEMA_VERSION,
        "id": chain.id,
        "type": chain.type,
        "description": chain.description,
        "status": chain.status.value,
        "created_at": iso(chain.created_at),
        "started_at": iso(chain.started_at),
        "finished_at": iso(chain.finished_at),
        "duration": _seconds(chain.started_at, chain.finished_at),
        "step_count": chain.step_count,
        "attempt": chain.attempt,
        "result": chain.result,
        "error": chain.error,
        # Derived on read: unfinished, and its embedded runner stopped renewing its lease.
        "orphaned": is_orphaned(chain),
        "workspace": chain.workspace,
        "submit_host": chain.submit_host,
    }


def result_json(chain: ChainRecord) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "id": chain.id,
        "status": chain.status.value,
        "result": chain.result,
        "error": chain.error,
    }


def stats_json(stats: Stats) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "total": stats.total,
        "by_status": stats.by_status,
        "by_type": stats.by_type,
        "durations": stats.durations,
        "orphaned": stats.orphaned,
    }


def _seconds(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)
