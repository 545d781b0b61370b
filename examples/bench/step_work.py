"""A pool child's work for every step, in this one process, without Celery's worker: the step
task's body (claim, compute, record, change notifications, the next step sent) for N chains
of 10 steps (`--steps`) submitted first, on the private Redis and a fresh SQLite store (or,
with `--postgres URL`, a database of its own on that server, dropped after). Prints the CPU
time of the process (all its threads) per step, and the wall time.

    python examples/bench/step_work.py [--chains 100] [--steps 10] [--rounds 3] \
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Under valgrind --tool=callgrind, the difference between the instruction counts of a run
with --chains 30 --rounds 1 and one with --chains 5 --rounds 1, divided by 250, is the
instructions per step (submit included), a figure the machine's load does not move.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from common import private_redis, store


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL server URL: the store goes there")
    opts = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(private_redis())
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        kind = "postgres" if opts.postgres else "sqlite"
        database = stack.enter_context(store(kind, opts.postgres, Path(folder)))
        os.environ.update(
            TASKCHAIN_BROKER_URL=f"{url}/0",
            TASKCHAIN_DATABASE_URL=database,
            TASKCHAIN_WORKSPACE=folder,
        )
        from taskchain.engine.app import STEP_TASK, get_app
        from taskchain.engine.submit import submit

        task = get_app().tasks[STEP_TASK]
        per_step, wall = [], []
        for _ in range(opts.rounds):
            config = {"numbers": [1] * (opts.steps + 1)}
            ids = [submit("math_chain", config).chain_id for _ in range(opts.chains)]
            start, began = time.process_time(), time.perf_counter()
            for chain_id in ids:
                for index in range(opts.steps):
                    task(chain_id, index)
            steps = opts.chains * opts.steps
            per_step.append((time.process_time() - start) * 1000 / steps)
            wall.append((time.perf_counter() - began) * 1000 / steps)
        rounds = ", ".join(f"{ms:.3f}" for ms in per_step)
        print(
            f"CPU per step {statistics.median(per_step):.3f} ms (rounds: {rounds}); "
            f"wall {statistics.median(wall):.3f} ms"
        )


if __name__ == "__main__":
    main()
