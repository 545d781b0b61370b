"""What one submit costs the submitting process in CPU and in Redis commands: N chains sent
by taskchain's `submit()` or by Celery's `apply_async` (`bare_celery.py`), after 20 warm-up
ones, in one process, no worker (the messages stay queued; the databases used are flushed).

    python submit_cost.py taskchain|celery --redis redis://127.0.0.1:PORT [--steps 1] [-n 200]

Prints one JSON line: CPU ms per chain (user + system), Redis commands per chain (from the
server's INFO commandstats) and the process's own socket writes to Redis per chain (round
trips). CPU time swings with the machine's load; for a figure the load does not move, run it
under `valgrind --tool=callgrind` with `-n 0` and `-n 200` and divide the difference in
instructions by 200.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=("taskchain", "celery"))
    parser.add_argument(
        "--redis", required=True, help="a private Redis: databases 1 and 3-4 are flushed"
    )
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("-n", type=int, default=200)
    opts = parser.parse_args()
    import redis

    scratch = tempfile.mkdtemp(prefix="taskchain-submit-cost-")
    os.environ.update(
        TASKCHAIN_BROKER_URL=f"{opts.redis}/1",
        TASKCHAIN_DATABASE_URL=f"sqlite:///{scratch}/store.db",
        TASKCHAIN_WORKSPACE=scratch,
        BENCH_BROKER=f"{opts.redis}/3",
        BENCH_BACKEND=f"{opts.redis}/4",
    )
    one = _taskchain(opts.steps) if opts.side == "taskchain" else _celery(opts.steps)
    for _ in range(20):
        one()
    server = redis.Redis.from_url(opts.redis)
    server.config_resetstat()
    writes = _count_writes()
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(opts.n):
        one()
    after = resource.getrusage(resource.RUSAGE_SELF)
    sent = writes[0]
    stats = server.info("commandstats")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    n = max(opts.n, 1)
    commands = {k.removeprefix("cmdstat_"): v["calls"] / n for k, v in stats.items()}
    commands.pop("config|resetstat", None)
    print(json.dumps({
        "side": opts.side, "steps": opts.steps, "chains": opts.n,
        "cpu_ms_per_chain": round(cpu / n * 1000, 3),
        "redis_commands_per_chain": commands,
        "redis_writes_per_chain": sent / n,
    }))  # fmt: skip
    for db in (1, 3, 4):
        redis.Redis.from_url(f"{opts.redis}/{db}").flushdb()


def _taskchain(steps: int) -> Any:
    from taskchain.engine.submit import submit

    config = {"numbers": [1] * (steps + 1)}
    return lambda: submit("math_chain", config)


def _celery(steps: int) -> Any:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bare_celery import add
    from celery import chain

    if steps == 1:
        return lambda: add.apply_async((1, 1))
    return lambda: chain(add.s(1, 1), *(add.s(1) for _ in range(steps - 1))).apply_async()


def _count_writes() -> list[int]:
    """Count the commands (or pipelines) this process writes to Redis from now on."""
    import redis.connection

    count = [0]
    real = redis.connection.Connection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        count[0] += 1
        real(self, command, check_health)

    redis.connection.Connection.send_packed_command = counted  # type: ignore[method-assign]
    return count


if __name__ == "__main__":
    main()
