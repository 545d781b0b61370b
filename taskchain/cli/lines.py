"""Plain lines, without Rich: a step change, a chain followed or its end, as `watch` prints
them when not on a terminal (and the cells the tables share: a value, a result's summary, a
duration). Pure: nothing here reads a clock, a terminal or the store."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskchain.store.tables import Status

if TYPE_CHECKING:  # what the read commands show are rows that read like these (ChainView)
    from taskchain.store.models import ChainRecord, StepRecord
    from taskchain.store.queries import ChainView


def value_text(value: Any) -> str:
    """A result as one line: scalars bare, the rest as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str | int | float | bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def result_summary(chain_type: str, result: Any) -> str:
    """A step's (or a chain's final) result in one short line, as its chain type sums it up:
    `checksum: 2 files, 1.2 KB` rather than a kilobyte of JSON. The whole result stays in
    `result`, `status --json` and `watch --json`."""
    if result is None:
        return ""
    # Only this type's module, not every type's (an unknown type: the default summary).
    from taskchain.chains import get_type
    from taskchain.chains.base import brief

    try:
        return get_type(chain_type).summarize(result)
    except Exception:  # a plug-in's summary (or its import) must never break a watcher
        return brief(result)


def duration(start: datetime | None, end: datetime | None, *, now: datetime | None = None) -> str:
    if start is None:
        return ""
    seconds = max(0.0, ((end or now or datetime.now(UTC)) - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def step_line(chain: ChainRecord, step: StepRecord) -> str:
    """One plain line for a step change (watch when not on a terminal); a result shows as
    its one-line summary."""
    detail = step.error if step.status == Status.FAILED else result_summary(chain.type, step.result)
    if step.status == Status.RUNNING:
        detail = step.progress or ""
    line = (
        f"{chain.id[:12]} step {step.index + 1}/{chain.step_count} {step.name} {step.status.value}"
    )
    if step.attempts > 1:
        line += f" (attempt {step.attempts})"
    return f"{line} {detail}".rstrip()


def failure_line(chain: ChainRecord) -> str:
    """Why a chain did not complete, for `taskchain: error: ...` (`submit -q`)."""
    return f"chain {chain.id} {chain.status.value}: {chain.error or 'no reason recorded'}"


def chain_line(chain: ChainRecord) -> str:
    """One plain line for a chain that `watch` without an id starts to follow."""
    line = f"{chain.id[:12]} {chain.type} {chain.status.value} ({chain.step_count} steps)"
    return f"{line} {chain.description}".rstrip()


def board_summary(views: Sequence[ChainView]) -> str:
    """The last line of `watch` without an id: how the chains watched ended."""
    return f"watched {len(views)} chain(s): {tally(views)}"


def tally(views: Sequence[ChainView]) -> str:
    """`2 COMPLETED, 1 FAILED`: chains per status, in the order statuses go."""
    counts = Counter(v.chain.status for v in views)
    return ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])


def summary_line(chain: ChainRecord) -> str:
    """The last plain line of a chain followed: its end, and its result's summary or error."""
    line = f"{chain.id} {chain.type} {chain.status.value}"
    if chain.started_at:
        line += f" in {duration(chain.started_at, chain.finished_at)}"
    if chain.status == Status.COMPLETED:
        return f"{line}: result {result_summary(chain.type, chain.result)}"
    return f"{line}: {chain.error}" if chain.error else line
