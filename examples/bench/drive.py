"""One side of a distributed measurement, run as a child process of its own so that each
side pays its own imports and connections outside the timed window. Prints one JSON object.

    python drive.py taskchain throughput --chains 200 --steps 10 [--batch]
    python drive.py celery latency --rounds 10 --steps 10
    python drive.py celery submit --chains 200 --steps 10

taskchain reads TASKCHAIN_* from the environment (broker, store, workspace); bare Celery
reads BENCH_BROKER, BENCH_BACKEND and BENCH_CELERY (see bare_celery.py). A worker must be
running for `throughput` and `latency`; `submit` needs none (messages stay queued).

Times: a chain's end is the moment its last step was recorded finished, taken from the
store's `finished_at` for taskchain and from the result backend's `date_done` for Celery,
so neither side's waiting loop adds to its figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

FINISHED = ("COMPLETED", "FAILED", "CANCELLED")


def numbers(steps: int) -> list[int]:
    """math_chain folds n numbers in n-1 steps; the sum is 1 + steps, as on the Celery side."""
    return [1] * (steps + 1)


# --- taskchain ----------------------------------------------------------------------------


class Store:
    """Reads the store by its table and column names only (stable), not through taskchain."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import Column, DateTime, MetaData, String, Table, create_engine

        self.engine = create_engine(url)
        self.chain = Table(
            "chain",
            MetaData(),
            Column("id", String, primary_key=True),
            Column("status", String),
            Column("description", String),
            Column("finished_at", DateTime(timezone=True)),
        )

    def progress(self, tag: str) -> tuple[int, int, float | None]:
        """(finished, completed, last finished_at as epoch) of the chains described `tag`."""
        from sqlalchemy import case, func, select

        c, status = self.chain.c, self.status()
        query = select(
            func.count(),
            func.sum(case((status == "COMPLETED", 1), else_=0)),
            func.max(c.finished_at),
        ).where(c.description == tag, status.in_(FINISHED))
        with self.engine.connect() as conn:
            finished, completed, last = conn.execute(query).one()
        return int(finished), int(completed or 0), _epoch(last)

    def status(self) -> Any:
        """The status column as text (PostgreSQL may keep it as an enum type of its own)."""
        from sqlalchemy import String, cast

        return cast(self.chain.c.status, String).label("status")

    def chain_done(self, chain_id: str) -> float | None:
        from sqlalchemy import select

        c = self.chain.c
        with self.engine.connect() as conn:
            query = select(self.status(), c.finished_at).where(c.id == chain_id)
            row = conn.execute(query).first()
        if row is None or row.status not in FINISHED:
            return None
        if row.status != "COMPLETED":
            raise SystemExit(f"chain {chain_id} ended {row.status}")
        return _epoch(row.finished_at)

    def wait(self, tag: str, count: int, poll: float, stall: float = 180.0) -> float:
        seen, since = -1, time.monotonic()
        while True:
            finished, completed, last = self.progress(tag)
            if finished >= count:
                if completed != count:
                    raise SystemExit(f"{count - completed} of {count} chains did not complete")
                assert last is not None
                return last
            if finished != seen:
                seen, since = finished, time.monotonic()
            elif time.monotonic() - since > stall:
                raise SystemExit(f"stalled at {finished}/{count} chains finished")
            time.sleep(poll)


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the store keeps UTC
    return float(value.timestamp())


def _batch_file(tag: str, chains: int, steps: int) -> str:
    fd, path = tempfile.mkstemp(prefix="taskchain-bench-", suffix=".jsonl")
    line = {"type": "math_chain", "config": {"numbers": numbers(steps)}, "description": tag}
    with os.fdopen(fd, "w") as out:
        out.writelines(json.dumps(line) + "\n" for _ in range(chains))
    return path


def taskchain_side(opts: argparse.Namespace) -> dict[str, Any]:
    from taskchain.engine.submit import submit

    store = Store(os.environ["TASKCHAIN_DATABASE_URL"])
    config = {"numbers": numbers(opts.steps)}
    warm_tag = f"bench-warmup-{uuid.uuid4().hex[:8]}"
    for _ in range(3):  # connections opened, first messages out; the worker answers
        submit("math_chain", {"numbers": [1, 2]}, description=warm_tag)
    if opts.mode != "submit":
        store.wait(warm_tag, 3, poll=0.05, stall=120)

    tag = f"bench-{uuid.uuid4().hex[:8]}"
    if opts.mode == "latency":
        seconds = []
        for _ in range(opts.rounds):
            t0 = time.time()
            chain_id = submit("math_chain", config, description=tag).chain_id
            while (end := store.chain_done(chain_id)) is None:
                time.sleep(0.025)  # the figure is finished_at; a slow poll only spares the CPU
            seconds.append(end - t0)
        return {"seconds": seconds, "median": statistics.median(seconds)}

    if opts.batch:
        path = _batch_file(tag, opts.chains, opts.steps)
        try:
            t0 = time.time()
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "taskchain", "submit", "--batch", path, "-q"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            submit_seconds = time.perf_counter() - start
        finally:
            os.unlink(path)
        per_chain: list[float] = []
    else:
        per_chain = []
        t0 = time.time()
        start = time.perf_counter()
        for _ in range(opts.chains):
            before = time.perf_counter()
            submit("math_chain", config, description=tag)
            per_chain.append(time.perf_counter() - before)
        submit_seconds = time.perf_counter() - start
    out: dict[str, Any] = {"submit_seconds": submit_seconds, "per_chain": per_chain}
    if opts.mode == "throughput":
        end = store.wait(tag, opts.chains, poll=0.25)
        out["seconds"] = end - t0
    return out


# --- bare Celery --------------------------------------------------------------------------


def celery_side(opts: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bare_celery import MODE, add, record_chain
    from celery import chain

    def one() -> Any:
        if MODE == "store":
            record_chain(uuid.uuid4().hex)
        if opts.steps == 1:
            return add.apply_async((1, 1))
        return chain(add.s(1, 1), *(add.s(1) for _ in range(opts.steps - 1))).apply_async()

    warm = [add.apply_async((1, 2)) for _ in range(3)]
    if opts.mode != "submit":
        for result in warm:
            result.get(timeout=120)

    if opts.mode == "latency":
        seconds = []
        for _ in range(opts.rounds):
            t0 = time.time()
            result = one()
            value = result.get(timeout=120)
            assert value == 1 + opts.steps, value
            seconds.append(result.date_done.timestamp() - t0)
        return {"seconds": seconds, "median": statistics.median(seconds)}

    per_chain, results = [], []
    t0 = time.time()
    start = time.perf_counter()
    for _ in range(opts.chains):
        before = time.perf_counter()
        results.append(one())
        per_chain.append(time.perf_counter() - before)
    submit_seconds = time.perf_counter() - start
    out: dict[str, Any] = {"submit_seconds": submit_seconds, "per_chain": per_chain}
    if opts.mode == "throughput":
        _until_ready(results, stall=180.0)
        assert all(result.get(timeout=5) == 1 + opts.steps for result in results)
        out["seconds"] = max(r.date_done.timestamp() for r in results) - t0
    return out


def _until_ready(results: list[Any], *, stall: float) -> None:
    """Wait for every result by reading the backend (a quarter second apart), not by
    `get()`'s subscription to each result's channel: once in a run of 200 chains that
    subscription never heard a result the backend had, and `get()` hung until its timeout.
    The figure comes from `date_done`, so the way of waiting adds nothing to it."""
    waiting, last_change = list(results), time.monotonic()
    while waiting:
        left = [r for r in waiting if not r.ready()]
        if len(left) < len(waiting):
            last_change = time.monotonic()
        elif time.monotonic() - last_change > stall:
            raise SystemExit(f"{len(left)} Celery result(s) not ready after {stall:g}s")
        waiting = left
        if waiting:
            time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=("taskchain", "celery"))
    parser.add_argument("mode", choices=("throughput", "latency", "submit"))
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", action="store_true", help="taskchain submit --batch FILE")
    opts = parser.parse_args()
    out = taskchain_side(opts) if opts.side == "taskchain" else celery_side(opts)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
