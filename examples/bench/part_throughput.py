"""Issue 9, target 1: throughput, steps per second from the first submit to the last step
finished, with one worker `-c 2` on the private Redis; and target 7, the same at 1, 2 and 4
worker processes (`scale`)."""

from __future__ import annotations

from collections import defaultdict

from common import Row, log, paired
from sides import (
    CELERY,
    CELERY_DEFAULTS,
    CELERY_EVENTS,
    Context,
    Side,
    drive,
    has_batch_submit,
    rotate,
    running,
)

TARGET = 0.9  # taskchain >= 0.9x bare Celery with the same guarantees


def workloads(ctx: Context) -> list[tuple[str, int, int]]:
    long_chains, short_chains = ctx.n(10, 200), ctx.n(40, 2000)
    return [
        (f"{long_chains} chains x 10 steps", long_chains, 10),
        (f"{short_chains:,} one-step chains", short_chains, 1),
    ]


def run(ctx: Context) -> list[Row]:
    sides = [*ctx.taskchain_sides(), CELERY, CELERY_DEFAULTS, CELERY_EVENTS, *ctx.floor_sides()]
    batch = has_batch_submit()
    rate: dict[tuple[str, str], list[float]] = defaultdict(list)
    for round_ in range(ctx.r(1, 3)):
        for side in rotate(sides, round_):
            log(f"throughput round {round_ + 1}: {side.label}")
            with running(side, ctx) as env:
                for name, chains, steps in workloads(ctx):
                    out = drive(side, "throughput", env, chains=chains, steps=steps)
                    rate[side.key, name].append(chains * steps / out["seconds"])
                    if side.kind == "taskchain" and side.events and batch:
                        out = drive(side, "throughput", env, chains=chains, steps=steps, batch=True)
                        rate[side.key + "-batch", name].append(chains * steps / out["seconds"])
    rows = []
    for name, _, _ in workloads(ctx):
        for side in ctx.taskchain_sides():
            variants = [(side.key, "submit()"), (side.key + "-batch", "submit --batch")]
            for key, how in variants:
                if (key, name) not in rate:
                    continue
                label = f"{name}, {side.tag}, {how}"
                rows.append(
                    paired(
                        "throughput",
                        label,
                        "steps/s",
                        rate[key, name],
                        rate[CELERY.key, name],
                        CELERY.label,
                        target=TARGET,
                        sense="ge",
                    )
                )
                # Events off is compared like for like, with bare Celery without events.
                for other in (CELERY_DEFAULTS, CELERY_EVENTS) if side.events else ():
                    rows.append(
                        paired(
                            "throughput",
                            label,
                            "steps/s",
                            rate[key, name],
                            rate[other.key, name],
                            other.label,
                        )
                    )
    for name, _, _ in workloads(ctx):
        for side in ctx.floor_sides():
            rows.append(floor("throughput", name, "steps/s", side, rate[side.key, name],
                              rate[CELERY.key, name]))  # fmt: skip
    if not batch:
        rows[0].note = "taskchain submit --batch not available: not timed"
    return rows


def floor(
    part: str, name: str, unit: str, side: Side, ours: list[float], theirs: list[float]
) -> Row:
    """The floor under a store-first design: bare Celery whose submitter records each chain
    in a store before sending it, and whose task claims and records itself there (one write
    transaction, then two per task; `side` says which store), against bare Celery with the
    same guarantees. A ratio taskchain cannot beat with those transactions."""
    return paired(
        part,
        f"{name}, floor: {side.label}",
        unit,
        ours,
        theirs,
        CELERY.label,
        note=f"not taskchain: what its {side.store} transactions cost bare Celery",
    )


def run_scale(ctx: Context) -> list[Row]:
    """Throughput of the 10-step workload at 1, 2 and 4 worker processes (`-c N`), each
    store, beside bare Celery (same guarantees) at the same concurrency."""
    chains = ctx.n(10, 200)
    counts = (1, 2) if ctx.quick else (1, 2, 4)
    shipped = [side for side in ctx.taskchain_sides() if side.events]
    sides: list[Side] = [*shipped, CELERY]
    rate: dict[tuple[str, int], list[float]] = defaultdict(list)
    for round_ in range(ctx.r(1, 2)):
        for n in counts:
            for side in rotate(sides, round_ + n):
                log(f"scale round {round_ + 1}: {side.label}, -c {n}")
                with running(side, ctx, concurrency=n) as env:
                    out = drive(side, "throughput", env, chains=chains, steps=10)
                    rate[side.key, n].append(chains * 10 / out["seconds"])
    rows = []
    for side in shipped:
        for n in counts:
            label = f"{chains}x10 steps, {side.store}, -c {n}"
            rows.append(
                paired(
                    "scale",
                    label,
                    "steps/s",
                    rate[side.key, n],
                    rate[CELERY.key, n],
                    f"{CELERY.label}, -c {n}",
                )
            )
        first, last = rate[side.key, counts[0]], rate[side.key, counts[-1]]
        gain = sorted(b / a for a, b in zip(first, last, strict=True))
        rows[-1].note = f"{side.store}: -c {counts[-1]} gives {gain[len(gain) // 2]:.2f}x -c 1"
    return rows
