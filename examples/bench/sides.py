"""The distributed sides compared: taskchain on each store, bare Celery with taskchain's
guarantees and with its defaults. Each side has its own Redis databases on the private
server, so several can run at once without sharing a queue."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    CLI,
    HERE,
    PY,
    base_env,
    celery_worker,
    pg_database,
    run_json,
    store,
    taskchain_worker,
)


@dataclass(frozen=True)
class Side:
    key: str
    label: str
    kind: str  # "taskchain" or "celery"
    db: int  # the Redis database its broker uses (Celery: and db + 1 for results)
    store: str | None = None  # taskchain, and Celery's floors: "sqlite" or "postgres"
    mode: str | None = None  # Celery: "guarantees", "events" or "defaults"
    events: bool = True  # taskchain: Celery task events on (the default), or off

    @property
    def tag(self) -> str:
        """How rows name a taskchain side: its store, and task events when they are off."""
        return f"{self.store}" if self.events else f"{self.store}, task events off"


TC_SQLITE = Side("tc-sqlite", "taskchain, SQLite store", "taskchain", 0, store="sqlite")
TC_PG = Side("tc-postgres", "taskchain, PostgreSQL store", "taskchain", 3, store="postgres")
#: TASKCHAIN_TASK_EVENTS=false: no task-sent events, workers without -E; what bare Celery with
#: the same guarantees (and no events) is compared against like for like.
TC_SQLITE_QUIET = Side(
    "tc-sqlite-quiet", "taskchain, SQLite store, task events off", "taskchain", 9,
    store="sqlite", events=False,
)  # fmt: skip
TC_PG_QUIET = Side(
    "tc-postgres-quiet", "taskchain, PostgreSQL store, task events off", "taskchain", 10,
    store="postgres", events=False,
)  # fmt: skip
CELERY = Side("celery", "bare Celery, same guarantees", "celery", 1, mode="guarantees")
CELERY_DEFAULTS = Side("celery-defaults", "bare Celery, its defaults", "celery", 5, mode="defaults")
#: The same guarantees; each chain recorded in a SQLite file by its submitter before it is
#: sent, and each task claiming and recording itself there (one write transaction, then two
#: per task, sqlite3 directly): the floor under a store-first design (bare_celery.py).
CELERY_STORE = Side(
    "celery-store", "bare Celery, same guarantees + SQLite writes (1 per chain, 2 per task)",
    "celery", 11,
    mode="store", store="sqlite",
)  # fmt: skip
#: The same floor on PostgreSQL (psycopg directly, a database of its own), with --postgres.
CELERY_STORE_PG = Side(
    "celery-store-postgres",
    "bare Celery, same guarantees + PostgreSQL writes (1 per chain, 2 per task)",
    "celery", 13, mode="store", store="postgres",
)  # fmt: skip
#: The same guarantees plus the task events a taskchain deployment sends (task-sent, -E).
CELERY_EVENTS = Side(
    "celery-events", "bare Celery, same guarantees + task events", "celery", 7, mode="events"
)


@dataclass
class Context:
    """What a part needs to run: the private Redis, PostgreSQL if given, folders, sizes."""

    redis: str
    postgres: str | None
    scratch: Path
    cache: Path | None
    quick: bool
    rounds: int | None
    fill: int | None
    rows: int | None

    def taskchain_sides(self) -> list[Side]:
        """Each store, with task events on (as shipped) and off."""
        if self.postgres:
            return [TC_SQLITE, TC_SQLITE_QUIET, TC_PG, TC_PG_QUIET]
        return [TC_SQLITE, TC_SQLITE_QUIET]

    def floor_sides(self) -> list[Side]:
        """Bare Celery recording every task in each store: the floors."""
        return [CELERY_STORE, CELERY_STORE_PG] if self.postgres else [CELERY_STORE]

    def n(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def r(self, quick: int, full: int) -> int:
        return self.rounds or (quick if self.quick else full)


def rotate(items: list[Side], by: int) -> list[Side]:
    """Interleaved rounds: each round starts with the next side, so drift hits all alike."""
    by %= len(items)
    return items[by:] + items[:by]


@contextlib.contextmanager
def running(
    side: Side, ctx: Context, *, concurrency: int = 2, worker: bool = True
) -> Iterator[dict[str, str]]:
    """The environment of one side, with a fresh store and (unless `worker=False`) its
    worker running until the block ends."""
    log = ctx.scratch / f"worker-{side.key}.log"
    if side.kind == "celery":
        with contextlib.ExitStack() as stack:
            if side.store == "postgres":
                assert ctx.postgres, "a PostgreSQL floor needs --postgres URL"
                floor = stack.enter_context(pg_database(ctx.postgres))
            else:
                floor = str(ctx.scratch / f"floor-{uuid.uuid4().hex[:8]}.db")
            env = base_env(
                BENCH_BROKER=f"{ctx.redis}/{side.db}",
                BENCH_BACKEND=f"{ctx.redis}/{side.db + 1}",
                BENCH_CELERY=side.mode or "guarantees",
                BENCH_STORE=floor,
            )
            if worker:
                stack.enter_context(celery_worker(env, concurrency, log))
            yield env
        return
    assert side.store
    with store(side.store, ctx.postgres, ctx.scratch) as url:
        env = base_env(
            TASKCHAIN_BROKER_URL=f"{ctx.redis}/{side.db}",
            TASKCHAIN_DATABASE_URL=url,
            TASKCHAIN_WORKSPACE=str(ctx.scratch),
            TASKCHAIN_TASK_EVENTS="true" if side.events else "false",
        )
        if side.store == "postgres":
            # Created by one command before a worker and the submitter race to create it.
            subprocess.run([*CLI, "list", "--json"], env=env, check=True, stdout=subprocess.DEVNULL)
        if not worker:
            yield env
            return
        with taskchain_worker(env, concurrency, log):
            yield env


def drive(side: Side, mode: str, env: dict[str, str], **options: Any) -> dict[str, Any]:
    """Run drive.py for one side and return what it printed."""
    args = [PY, str(HERE / "drive.py"), side.kind, mode]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value not in (None, False):
            args += [flag, str(value)]
    return run_json(args, env)  # type: ignore[no-any-return]


def has_batch_submit() -> bool:
    """Whether this taskchain has `submit --batch` (issue 9 adds it)."""
    done = subprocess.run(
        [*CLI, "submit", "--help"], env=base_env(), capture_output=True, text=True
    )
    return "--batch" in done.stdout


def worker_log_tail(ctx: Context, side: Side) -> str:
    path = ctx.scratch / f"worker-{side.key}.log"
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""
