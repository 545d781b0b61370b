"""Issue 9, target 2: one 10-step chain, submit to finished, one chain at a time.

Every side's worker runs for the whole part (each on its own Redis databases, idle while the
others are measured), and rounds interleave the sides; a round is the median of several
chains in a row."""

from __future__ import annotations

import contextlib
from collections import defaultdict

from common import Row, log, paired
from part_throughput import floor
from sides import (
    CELERY,
    CELERY_DEFAULTS,
    CELERY_EVENTS,
    Context,
    drive,
    rotate,
    running,
)

TARGET = 1.25  # taskchain <= 1.25x bare Celery


def run(ctx: Context) -> list[Row]:
    sides = [*ctx.taskchain_sides(), CELERY, CELERY_DEFAULTS, CELERY_EVENTS, *ctx.floor_sides()]
    per_round = ctx.n(3, 10)
    ms: dict[str, list[float]] = defaultdict(list)
    with contextlib.ExitStack() as stack:
        envs = {side.key: stack.enter_context(running(side, ctx)) for side in sides}
        for round_ in range(ctx.r(1, 5)):
            log(f"latency round {round_ + 1}")
            for side in rotate(sides, round_):
                out = drive(side, "latency", envs[side.key], rounds=per_round, steps=10)
                ms[side.key].append(out["median"] * 1000)
    rows = []
    for side in ctx.taskchain_sides():
        label = f"10-step chain, {side.tag}"
        rows.append(
            paired(
                "latency",
                label,
                "ms",
                ms[side.key],
                ms[CELERY.key],
                CELERY.label,
                target=TARGET,
                note=f"each round the median of {per_round} chains",
            )
        )
        for other in (CELERY_DEFAULTS, CELERY_EVENTS) if side.events else ():
            rows.append(paired("latency", label, "ms", ms[side.key], ms[other.key], other.label))
    for side in ctx.floor_sides():
        rows.append(floor("latency", "10-step chain", "ms", side, ms[side.key], ms[CELERY.key]))
    return rows
