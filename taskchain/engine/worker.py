"""`taskchain worker`: a Celery worker for the chain queues, plus the recovery sweep."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery

from taskchain.engine.app import QUEUES, get_app
from taskchain.engine.dispatch import ResultBackendUnavailable, first_line
from taskchain.errors import BrokerUnavailable, InvalidInput
from taskchain.settings import get_settings, mask_url

#: Called before each wait for an unreachable service: (attempt, seconds to wait, problem).
OnRetry = Callable[[int, float, str], None]
MAX_RETRY_DELAY = 10.0


def run_worker(
    *,
    queues: Sequence[str],
    concurrency: int,
    pool: str,
    loglevel: str,
    hostname: str | None,
    wait_for_broker: bool = False,
    on_retry: OnRetry | None = None,
) -> None:
    from celery.signals import worker_ready, worker_shutdown

    from taskchain.engine.recovery import start_sweeper
    from taskchain.store import get_engine

    unknown = [q for q in queues if q not in QUEUES]
    if unknown or not queues:
        bad = unknown[0] if unknown else "(none)"
        raise InvalidInput(f"unknown queue {bad!r} (known: {', '.join(QUEUES)})")
    if pool not in ("prefork", "solo", "threads"):
        raise InvalidInput(f"unknown pool {pool!r} (known: prefork, solo, threads)")
    app = get_app()
    # Reach every service first: left to itself, Celery retries a dead broker for minutes
    # without a word a process manager could act on.
    wait_for_services(app, wait=wait_for_broker, on_retry=on_retry)
    get_engine()  # StoreUnavailable (exit 4) now rather than on the first step
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


def wait_for_services(app: Celery, *, wait: bool, on_retry: OnRetry | None = None) -> None:
    """Return once the broker (and the result backend, if any) answer.

    Without `wait`, give up with BrokerUnavailable once the broker timeout has passed; with
    it, keep trying with a growing pause, telling `on_retry` before each pause.
    """
    settings = get_settings()
    deadline = time.monotonic() + settings.broker_timeout
    attempt = 0
    while True:
        attempt += 1
        problem = _unreachable(app)
        if problem is None:
            return
        what, url, reason = problem
        if not wait:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _gave_up(what, url, reason, settings.broker_timeout)
            time.sleep(min(0.5, remaining))
            continue
        delay = min(0.5 * 2 ** (attempt - 1), MAX_RETRY_DELAY)
        if on_retry is not None:
            on_retry(attempt, delay, f"{what} {url} is unreachable: {reason}")
        time.sleep(delay)


def _gave_up(what: str, url: str, reason: str, timeout: float) -> BrokerUnavailable:
    reason = f"{reason} (gave up after {timeout:g}s; --wait-for-broker keeps trying)"
    if what == "broker":
        return BrokerUnavailable(url, reason)
    return ResultBackendUnavailable(url, reason)


def _unreachable(app: Celery) -> tuple[str, str, str] | None:
    """(service, masked URL, reason) for the first service that does not answer, or None."""
    settings = get_settings()
    try:
        with app.connection_for_write() as conn:
            # One attempt (kombu's own connect() waits 2 s and tries again); this loop retries.
            conn.ensure_connection(max_retries=0)
    except Exception as exc:
        return "broker", mask_url(settings.effective_broker), first_line(exc)
    problem = result_backend_problem(app)
    if problem is not None:
        return "result backend", mask_url(settings.result_backend), problem
    return None


def result_backend_problem(app: Celery) -> str | None:
    """Why the result backend does not answer, or None (also when there is none to ask)."""
    if not get_settings().uses_result_backend:
        return None
    # Celery's Redis backends need a live server on every send and result; the RPC backend
    # rides on the broker, and a database backend's store is checked when it is used.
    client = getattr(app.backend, "client", None)
    if client is None or not hasattr(client, "ping"):
        return None
    try:
        client.ping()
    except Exception as exc:
        return first_line(exc)
    return None
