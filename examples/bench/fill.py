"""Fill a store with a realistic history, fast: N chains and about 2N steps.

    python examples/bench/fill.py URL N

The store is created by taskchain itself first (`taskchain list`, so its own schema and
upgrades apply); then rows go in with bulk INSERTs on the store's tables, in batches, one
transaction each. Only the tables' and columns' names are used, and only the columns the
table has, so the filler keeps working when the schema grows. The store's own triggers
(schema 0005) set each chain's run time and count it in the tallies `stats` reads, on these
INSERTs as on taskchain's.

The mix: created over the last 30 days (so `list --since 1h` finds ~N/720 chains); 93%
COMPLETED, 4% FAILED, 1.5% CANCELLED, 1% RUNNING, 0.5% PENDING; math 60%, data 25%, io 15%;
1 to 3 steps each, their statuses consistent with the chain's. Deterministic for a given N.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

BATCH = 5_000
STATUSES = (
    ("COMPLETED", 0.93),
    ("FAILED", 0.04),
    ("CANCELLED", 0.015),
    ("RUNNING", 0.01),
    ("PENDING", 0.005),
)
TYPES = (("math_chain", 0.60, "math"), ("data_chain", 0.25, "data"), ("io_chain", 0.15, "io"))
STEP_NAMES = {"math_chain": "add", "data_chain": "clean", "io_chain": "checksum"}


def tables(url: str) -> tuple[Any, Any, Any]:
    """The engine and the `chain` and `step` tables, as taskchain's models declare them."""
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel

    import taskchain.store  # noqa: F401  (registers the tables)

    engine = create_engine(url)
    return engine, SQLModel.metadata.tables["chain"], SQLModel.metadata.tables["step"]


def count(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM chain")).scalar_one())
    except Exception:
        return -1
    finally:
        engine.dispose()


def _pick(rng: random.Random, weighted: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    roll, total = rng.random(), 0.0
    for item in weighted:
        total += item[1]
        if roll < total:
            return item
    return weighted[0]


def _rows(
    rng: random.Random, now: datetime, n: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    chains, steps = [], []
    for _ in range(n):
        chain_id = f"{rng.getrandbits(128):032x}"
        type_name, _, queue = _pick(rng, TYPES)
        status = _pick(rng, STATUSES)[0]
        created = now - timedelta(seconds=rng.random() * 30 * 86400)
        count = rng.choice((1, 2, 3))
        started = created + timedelta(milliseconds=rng.randint(1, 500))
        finished = started + timedelta(milliseconds=rng.lognormvariate(5, 1.5))
        running = status in ("RUNNING", "PENDING")
        # Which step the chain stopped at (FAILED, CANCELLED) or is at (RUNNING).
        stop = rng.randrange(count)
        chains.append(
            {
                "id": chain_id,
                "type": type_name,
                "description": "" if rng.random() < 0.7 else "nightly",
                "status": status,
                "config": {"numbers": [1] * (count + 1)},
                "created_at": created,
                "started_at": None if status == "PENDING" else started,
                "finished_at": None if running else finished,
                "result": count + 1 if status == "COMPLETED" else None,
                "error": "division by zero (5 // 0)" if status == "FAILED" else None,
                "step_count": count,
                "cancel_requested": status == "CANCELLED",
                "attempt": 1,
            }
        )
        for index in range(count):
            if status == "COMPLETED" or index < stop:
                step_status = "COMPLETED"
            elif index == stop:
                step_status = {
                    "FAILED": "FAILED",
                    "CANCELLED": "CANCELLED",
                    "RUNNING": "RUNNING",
                    "PENDING": "PENDING",
                }[status]
            else:
                step_status = "PENDING" if running else "SKIPPED"
            done = step_status in ("COMPLETED", "FAILED", "CANCELLED")
            steps.append(
                {
                    "chain_id": chain_id,
                    "index": index,
                    "name": f"{STEP_NAMES[type_name]} {index + 1}",
                    "queue": queue,
                    "params": {"operand": 1},
                    "status": step_status,
                    "task_id": f"{rng.getrandbits(128):032x}",
                    "attempts": 0 if step_status in ("PENDING", "SKIPPED") else 1,
                    "started_at": started if step_status not in ("PENDING", "SKIPPED") else None,
                    "finished_at": finished if done else None,
                    "result": index + 2 if step_status == "COMPLETED" else None,
                    "error": "division by zero (5 // 0)" if step_status == "FAILED" else None,
                    "dispatched_at": created if index == 0 else None,
                }
            )
    return chains, steps


def fill(url: str, n: int, env: dict[str, str], seed: int = 1) -> float:
    """Create the store with taskchain, then insert N chains; returns the seconds taken."""
    from common import CLI

    start = time.perf_counter()
    subprocess.run(
        [*CLI, "list", "--json"],
        env={**env, "TASKCHAIN_DATABASE_URL": url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    engine, chain, step = tables(url)
    chain_cols, step_cols = set(chain.c.keys()), set(step.c.keys())
    rng, now = random.Random(seed), datetime.now(UTC)
    try:
        for done in range(0, n, BATCH):
            chains, steps = _rows(rng, now, min(BATCH, n - done))
            with engine.begin() as conn:
                conn.execute(chain.insert(), [_only(r, chain_cols) for r in chains])
                conn.execute(step.insert(), [_only(r, step_cols) for r in steps])
            if done and done % 100_000 == 0:
                print(f"[bench] filled {done:,} chains ...", file=sys.stderr, flush=True)
    finally:
        engine.dispose()
    return time.perf_counter() - start


def _only(row: dict[str, Any], columns: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k in columns}


if __name__ == "__main__":
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
    from common import base_env

    seconds = fill(sys.argv[1], int(sys.argv[2]), base_env())
    print(f"{int(sys.argv[2]):,} chains in {seconds:.1f} s")
