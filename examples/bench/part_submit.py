"""Issue 9, target 3: what one chain costs the submitting process, taskchain's `submit()`
against Celery's `apply_async` of the same chain, both in-process with no worker running
(messages stay queued in the private Redis, emptied after). The floor: `apply_async` after
recording the chain in the store in one write transaction, through the driver directly."""

from __future__ import annotations

import time
from collections import defaultdict

from common import CLI, Row, flush_redis, log, paired
from part_throughput import floor
from sides import CELERY, CELERY_EVENTS, Context, Side, drive, has_batch_submit, rotate, running

TARGET = 1.5  # taskchain <= 1.5x apply_async per chain


def run(ctx: Context) -> list[Row]:
    chains = ctx.n(20, 200)
    sides: list[Side] = [*ctx.taskchain_sides(), CELERY, CELERY_EVENTS, *ctx.floor_sides()]
    batch = has_batch_submit()
    ms: dict[tuple[str, int], list[float]] = defaultdict(list)
    for round_ in range(ctx.r(1, 3)):
        log(f"submit round {round_ + 1}")
        for side in rotate(sides, round_):
            for steps in (10, 1):
                with running(side, ctx, worker=False) as env:
                    out = drive(side, "submit", env, chains=chains, steps=steps)
                    ms[side.key, steps].append(out["submit_seconds"] / chains * 1000)
                    if side.kind == "taskchain" and side.events and batch:
                        ms[side.key + "-batch", steps].append(_batch_ms(side, env, chains, steps))
                flush_redis(ctx.redis)
    rows = []
    for steps in (10, 1):
        for side in ctx.taskchain_sides():
            for key, how in ((side.key, "submit()"), (side.key + "-batch", "submit --batch")):
                if (key, steps) not in ms:
                    continue
                label = f"{steps}-step chain, {side.tag}, {how}"
                baselines: tuple[tuple[Side, str, float | None], ...] = (
                    (CELERY, "Celery apply_async per chain", TARGET),
                    (CELERY_EVENTS, "apply_async with a task-sent event, as taskchain sends", None),
                )[: 2 if side.events else 1]
                for base, base_label, target in baselines:
                    rows.append(
                        paired("submit", label, "ms/chain", ms[key, steps],
                               ms[base.key, steps], base_label, target=target)
                    )  # fmt: skip
    for steps in (10, 1):
        for side in ctx.floor_sides():
            rows.append(floor("submit", f"{steps}-step chain", "ms/chain", side,
                              ms[side.key, steps], ms[CELERY.key, steps]))  # fmt: skip
    if batch:
        rows[0].note = "submit --batch: marginal cost per chain, (t(N) - t(1)) / (N - 1), whole CLI"
    else:
        rows[0].note = "taskchain submit --batch not available: not timed"
    return rows


def _batch_ms(side: Side, env: dict[str, str], chains: int, steps: int) -> float:
    """Marginal per-chain cost of `taskchain submit --batch` (start-up cancels out)."""
    import json
    import os
    import subprocess
    import tempfile

    # Enough chains that their cost stands well above the noise of a process start-up (a
    # quick run's 20 chains did not: the difference could come out negative), and the
    # fastest of three runs of each size.
    many = max(chains, 500)
    seconds = []
    for count in (1, many):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as out:
            line = {"type": "math_chain", "config": {"numbers": [1] * (steps + 1)}}
            out.writelines(json.dumps(line) + "\n" for _ in range(count))
        try:
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                subprocess.run(
                    [*CLI, "submit", "--batch", out.name, "-q"],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                runs.append(time.perf_counter() - start)
            seconds.append(min(runs))
        finally:
            os.unlink(out.name)
    return (seconds[1] - seconds[0]) / (many - 1) * 1000
