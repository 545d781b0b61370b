"""`taskchain worker`: a Celery worker for the chain queues, plus the lease sweeper."""

from __future__ import annotations

from collections.abc import Sequence

from taskchain.engine.app import QUEUES, get_app
from taskchain.errors import InvalidInput


def run_worker(
    *, queues: Sequence[str], concurrency: int, pool: str, loglevel: str, hostname: str | None
) -> None:
    unknown = [q for q in queues if q not in QUEUES]
    if unknown or not queues:
        raise InvalidInput(
            f"unknown queue {unknown[0] if unknown else '(none)'!r} (known: {', '.join(QUEUES)})"
        )
    if pool not in ("prefork", "solo", "threads"):
        raise InvalidInput(f"unknown pool {pool!r} (known: prefork, solo, threads)")
    argv = ["worker", "-Q", ",".join(queues), "-c", str(concurrency), "-P", pool, "-l", loglevel]
    if hostname:
        argv += ["-n", hostname]
    get_app().worker_main(argv)
