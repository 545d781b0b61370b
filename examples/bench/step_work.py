"""A pool child's work for every step, in this one process, without Celery's worker: the step
task's body (claim, compute, record, change notifications, the next step sent) for N chains
of 10 steps (`--steps`) submitted first, on the private Redis and a fresh SQLite store.
Prints the CPU time of the process (all its threads) per step.

    python examples/bench/step_work.py [--chains 100] [--steps 10] [--rounds 3]

Under valgrind --tool=callgrind, the difference between the instruction counts of a run
with --chains 30 --rounds 1 and one with --chains 5 --rounds 1, divided by 250, is the
instructions per step (submit included), a figure the machine's load does not move.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from common import private_redis


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    with private_redis() as url, tempfile.TemporaryDirectory() as folder:
        os.environ.update(
            TASKCHAIN_BROKER_URL=f"{url}/0",
            TASKCHAIN_DATABASE_URL=f"sqlite:///{folder}/store.db",
            TASKCHAIN_WORKSPACE=folder,
        )
        from taskchain.engine.app import STEP_TASK, get_app
        from taskchain.engine.submit import submit

        task = get_app().tasks[STEP_TASK]
        per_step = []
        for _ in range(opts.rounds):
            config = {"numbers": [1] * (opts.steps + 1)}
            ids = [submit("math_chain", config).chain_id for _ in range(opts.chains)]
            start = time.process_time()
            for chain_id in ids:
                for index in range(opts.steps):
                    task(chain_id, index)
            per_step.append((time.process_time() - start) * 1000 / (opts.chains * opts.steps))
        rounds = ", ".join(f"{ms:.3f}" for ms in per_step)
        print(f"CPU per step {statistics.median(per_step):.3f} ms (rounds: {rounds})")


if __name__ == "__main__":
    main()
