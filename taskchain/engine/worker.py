"""`taskchain worker`: a Celery worker for the chain queues, plus the recovery sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskchain.engine.app import QUEUES, get_app
from taskchain.errors import InvalidInput


def run_worker(
    *, queues: Sequence[str], concurrency: int, pool: str, loglevel: str, hostname: str | None
) -> None:
    from celery.signals import worker_ready, worker_shutdown

    from taskchain.engine.recovery import start_sweeper

    unknown = [q for q in queues if q not in QUEUES]
    if unknown or not queues:
        bad = unknown[0] if unknown else "(none)"
        raise InvalidInput(f"unknown queue {bad!r} (known: {', '.join(QUEUES)})")
    if pool not in ("prefork", "solo", "threads"):
        raise InvalidInput(f"unknown pool {pool!r} (known: prefork, solo, threads)")
    app = get_app()
    stops = []

    def on_ready(**_kw: Any) -> None:
        stops.append(start_sweeper(app))

    def on_shutdown(**_kw: Any) -> None:
        for stop in stops:
            stop.set()

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
    argv = ["worker", "-Q", ",".join(queues), "-c", str(concurrency), "-P", pool, "-l", loglevel]
    if hostname:
        argv += ["-n", hostname]
    app.worker_main(argv)
