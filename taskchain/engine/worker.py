"""`taskchain worker`: a Celery worker for the chain queues, plus the recovery sweep."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery

from taskchain.engine.app import get_app
from taskchain.engine.dispatch import ResultBackendUnavailable, first_line
from taskchain.engine.queues import FAMILIES, family_of, queue_name
from taskchain.errors import BrokerUnavailable, InvalidInput
from taskchain.settings import get_settings, mask_url

#: Called before each wait for an unreachable service: (attempt, seconds to wait, problem).
OnRetry = Callable[[int, float, str], None]
MAX_RETRY_DELAY = 10.0


@dataclass(frozen=True)
class WorkerOptions:
    """Celery worker options taskchain names itself (the rest pass through `extra`)."""

    concurrency: int = 2
    pool: str = "prefork"
    loglevel: str = "INFO"
    hostname: str | None = None
    events: bool = True
    max_tasks_per_child: int | None = None
    max_memory_per_child: int | None = None
    autoscale: str | None = None
    prefetch_multiplier: int | None = None
    #: Celery `worker` options given after `--`, passed on as they are.
    extra: tuple[str, ...] = ()


def families(names: Sequence[str]) -> list[str]:
    """The queue families a worker is asked for (`math`, `taskchain.math`, the old `celery`),
    each once; InvalidInput for a name that is none of taskchain's."""
    found: list[str] = []
    for name in names:
        family = family_of(name)
        if family is None:
            raise InvalidInput(f"unknown queue {name!r} (known: {', '.join(FAMILIES)})")
        if family not in found:
            found.append(family)
    if not found:
        raise InvalidInput(f"no queue given (known: {', '.join(FAMILIES)})")
    return found


def celery_argv(queues: Sequence[str], options: WorkerOptions) -> list[str]:
    """The `celery worker` command line for these families and options."""
    o = options
    if o.pool not in ("prefork", "solo", "threads"):
        raise InvalidInput(f"unknown pool {o.pool!r} (known: prefork, solo, threads)")
    names = ",".join(queue_name(f) for f in families(queues))
    argv = ["worker", "-Q", names, "-c", str(o.concurrency), "-P", o.pool, "-l", o.loglevel]
    if o.hostname:
        argv += ["-n", o.hostname]
    if o.events:
        argv.append("-E")
    if o.max_tasks_per_child is not None:
        argv += ["--max-tasks-per-child", str(o.max_tasks_per_child)]
    if o.max_memory_per_child is not None:
        argv += ["--max-memory-per-child", str(o.max_memory_per_child)]
    if o.autoscale is not None:
        argv += ["--autoscale", _autoscale(o.autoscale)]
    if o.prefetch_multiplier is not None:
        argv += ["--prefetch-multiplier", str(o.prefetch_multiplier)]
    return [*argv, *o.extra]


def _autoscale(value: str) -> str:
    match = re.fullmatch(r"\s*(\d+)\s*(?:,\s*(\d+)\s*)?", value)
    most, least = (int(match[1]), int(match[2] or 0)) if match else (0, 0)
    if not match or most < 1 or least > most:
        raise InvalidInput(
            f"--autoscale {value!r}: give MAX,MIN processes, MAX at least 1 and MIN at most "
            "MAX (e.g. 8,2)"
        )
    return f"{most},{least}"


def run_worker(
    *,
    queues: Sequence[str],
    options: WorkerOptions,
    wait_for_broker: bool = False,
    on_retry: OnRetry | None = None,
) -> int:
    """Run a Celery worker for these queue families until it stops; return its exit code."""
    from celery.signals import worker_ready, worker_shutdown

    from taskchain.chains import all_types
    from taskchain.engine.recovery import start_sweeper
    from taskchain.store import get_engine

    argv = celery_argv(queues, options)
    # Every chain type, plug-ins included, before the pool forks: a plug-in that does not
    # load stops the worker now (exit 2) rather than fail each of its steps later.
    all_types()
    app = get_app()
    # Reach every service first: left to itself, Celery retries a dead broker for minutes
    # without a word a process manager could act on.
    wait_for_services(app, wait=wait_for_broker, on_retry=on_retry)
    get_engine()  # StoreUnavailable (exit 4) now rather than on the first step
    # `-E` switches task events on; off, the app's own default must not switch them back on.
    app.conf.worker_send_task_events = options.events
    stops = []

    def on_ready(**_kw: Any) -> None:
        stops.append(start_sweeper(app))

    def on_shutdown(**_kw: Any) -> None:
        for stop in stops:
            stop.set()

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
    return _start(app, argv)


def _start(app: Celery, argv: list[str]) -> int:
    """`celery worker ARGV`; a bad pass-through option is InvalidInput (exit 2), one line."""
    import click
    from celery.bin.celery import celery

    # What app.start() does, but keeping the worker's exit code, and with Celery's own
    # parser errors raised (standalone_mode=False) rather than printed as a usage screen.
    celery.params[0].default = app
    try:
        code = celery.main(args=argv, standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        message = exc.format_message().rstrip(".")
        raise InvalidInput(f"celery worker: {message} (see 'celery worker --help')") from None
    finally:
        celery.params[0].default = None
    return code if isinstance(code, int) else 0


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
