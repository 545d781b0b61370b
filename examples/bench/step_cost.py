"""What one step costs the worker, less noisy than steps/s on a busy machine: the CPU time
(user + system) of the worker's whole process tree (main process and pool children) and the
Redis commands (INFO commandstats of the private Redis), over one 200 x 10 run, per step;
and the CPU time of the process that submitted the chains (`submit()` or `apply_async`).

    python examples/bench/step_cost.py [--chains 200] [--steps 10] [--rounds 3] \
        [taskchain quiet celery events]

`--chains 2000 --steps 1` measures the throughput part's one-step workload.

Each side runs alone on the private Redis (one worker `-c 2`, as the throughput part), after a
short warm-up; rounds interleave the sides. CPU comes from /proc (Linux only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import log, private_redis
from sides import (
    CELERY,
    CELERY_EVENTS,
    TC_SQLITE,
    TC_SQLITE_QUIET,
    Context,
    Side,
    drive,
    rotate,
    running,
)

SIDES = {
    "taskchain": TC_SQLITE,
    "quiet": TC_SQLITE_QUIET,  # TASKCHAIN_TASK_EVENTS=false
    "celery": CELERY,
    "events": CELERY_EVENTS,
}
TICK = os.sysconf("SC_CLK_TCK")


def group_cpu(pgid: int) -> tuple[float, float]:
    """(CPU seconds of the group's leader, of the rest of the group): the worker's main
    process and its pool children (which live as long as the worker)."""
    leader = rest = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            cpu = (int(fields[11]) + int(fields[12])) / TICK
            if int(pid) == pgid:
                leader += cpu
            else:
                rest += cpu
    return leader, rest


def worker_group(marker: bytes) -> int:
    """The process group of the worker whose environment holds `marker` (its broker URL)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if int(fields[2]) == int(pid) and marker in environ:
            return int(pid)
    raise RuntimeError("worker process not found")


def commands(client: Any) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in client.info("commandstats").items()}


def children_cpu() -> float:
    """CPU seconds of this process's finished children (drive.py, the submitter)."""
    times = os.times()
    return times.children_user + times.children_system


def measure(side: Side, ctx: Context, client: Any, chains: int, steps: int) -> dict[str, Any]:
    with running(side, ctx) as env:
        drive(side, "throughput", env, chains=5, steps=steps)  # warm-up
        group = worker_group(f"{ctx.redis}/{side.db}".encode())
        (main0, pool0), before, submitter0 = group_cpu(group), commands(client), children_cpu()
        drive(side, "throughput", env, chains=chains, steps=steps)
        submitter1 = children_cpu()
        time.sleep(0.5)  # the last events and acks
        (main1, pool1), after = group_cpu(group), commands(client)
    total = chains * steps
    calls = {k: (n - before.get(k, 0)) / total for k, n in after.items()}
    return {
        "main_ms": (main1 - main0) * 1000 / total,
        "pool_ms": (pool1 - pool0) * 1000 / total,
        "submitter_ms": (submitter1 - submitter0) * 1000 / total,
        "redis": {k: round(v, 2) for k, v in sorted(calls.items()) if v >= 0.05},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    # No `choices`: Python 3.11's argparse checks an empty or default list against them as
    # one value and refuses it.
    parser.add_argument("sides", nargs="*", help=f"any of {', '.join(SIDES)} (default: all)")
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    unknown = sorted(set(opts.sides) - set(SIDES))
    if unknown:
        parser.error(f"unknown side {unknown[0]!r} (choose from {', '.join(SIDES)})")
    import redis

    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with private_redis() as url, tempfile.TemporaryDirectory() as scratch:
        ctx = Context(url, None, Path(scratch), None, False, 1, None, None)
        client = redis.Redis.from_url(url)
        for round_ in range(opts.rounds):
            for side in rotate([SIDES[name] for name in opts.sides or SIDES], round_):
                log(f"step cost round {round_ + 1}: {side.label}")
                found[side.label].append(measure(side, ctx, client, opts.chains, opts.steps))
    for label, runs in found.items():
        total = statistics.median(r["main_ms"] + r["pool_ms"] for r in runs)
        main_ms = statistics.median(r["main_ms"] for r in runs)
        pool_ms = statistics.median(r["pool_ms"] for r in runs)
        submitter_ms = statistics.median(r["submitter_ms"] for r in runs)
        print(
            f"{label}: worker CPU per step {total:.2f} ms (main process {main_ms:.2f}, pool "
            f"children {pool_ms:.2f}; medians of {len(runs)} rounds), the submitting process "
            f"{submitter_ms:.2f} ms (its start included); Redis commands per step "
            f"{sum(runs[-1]['redis'].values()):.1f}: {json.dumps(runs[-1]['redis'])}"
        )


if __name__ == "__main__":
    main()
