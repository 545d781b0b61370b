"""Operating commands: worker, workers and info."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from taskchain.cli import output
from taskchain.errors import InvalidInput
from taskchain.settings import get_settings


def worker(
    celery_args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- CELERY_OPTION...",
            help="Any other `celery worker` option, after `--`.",
            show_default=False,
        ),
    ] = None,
    queues: Annotated[
        str,
        typer.Option(
            "--queues", "-Q", help="Comma-separated queue families: default, math, data, io."
        ),
    ] = "default,math,data,io",
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Worker processes.")
    ] = 2,
    pool: Annotated[
        str, typer.Option("--pool", "-P", help="Celery pool: prefork, solo or threads.")
    ] = "prefork",
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="Celery log level.")] = "INFO",
    hostname: Annotated[
        str | None, typer.Option("--hostname", "-n", help="Worker node name.")
    ] = None,
    events: Annotated[
        bool | None,
        typer.Option(
            "--events/--no-events",
            "-E",
            help="Send task events (for Flower, `celery events`); default TASKCHAIN_TASK_EVENTS.",
        ),
    ] = None,
    max_tasks_per_child: Annotated[
        int | None,
        typer.Option(min=1, help="Replace a pool process after this many steps."),
    ] = None,
    max_memory_per_child: Annotated[
        int | None,
        typer.Option(min=1, help="Replace a pool process after a step leaves it above this KiB."),
    ] = None,
    autoscale: Annotated[
        str | None,
        typer.Option(metavar="MAX,MIN", help="Grow and shrink the pool between MIN and MAX."),
    ] = None,
    prefetch_multiplier: Annotated[
        int | None,
        typer.Option(min=1, help="Messages each process reserves ahead (default 1)."),
    ] = None,
    wait_for_broker: Annotated[
        bool,
        typer.Option(
            "--wait-for-broker",
            help="Keep trying an unreachable broker (one line per retry) instead of exiting 4 "
            "after the broker timeout.",
        ),
    ] = False,
) -> None:
    """Start a Celery worker for the chain queues (distributed mode).

    Queues are named TASKCHAIN_QUEUE_PREFIX + family (taskchain.math, ...); Celery's own
    `celery` queue is never consumed. Task events are on unless --no-events (or
    TASKCHAIN_TASK_EVENTS=false). Without --wait-for-broker, a broker (or result backend)
    that does not answer within TASKCHAIN_BROKER_TIMEOUT seconds is exit 4, so a process
    manager can restart the worker.

    Example: taskchain worker -c 4 -Q math,data -- --without-gossip
    """
    from taskchain.engine.worker import WorkerOptions, run_worker

    if get_settings().embedded:
        raise InvalidInput(
            "no broker configured: in embedded mode `submit` runs chains itself. For workers, "
            "set TASKCHAIN_BROKER_URL (e.g. redis://127.0.0.1:6379/0) or pass --broker-url"
        )
    options = WorkerOptions(
        concurrency=concurrency,
        pool=pool,
        loglevel=loglevel,
        hostname=hostname,
        events=get_settings().task_events if events is None else events,
        max_tasks_per_child=max_tasks_per_child,
        max_memory_per_child=max_memory_per_child,
        autoscale=autoscale,
        prefetch_multiplier=prefetch_multiplier,
        extra=tuple(celery_args or ()),
    )
    names = [q.strip() for q in queues.split(",") if q.strip()]
    code = run_worker(
        queues=names, options=options, wait_for_broker=wait_for_broker, on_retry=_say_retry
    )
    if code:
        raise typer.Exit(code)


def _say_retry(attempt: int, delay: float, problem: str) -> None:
    typer.echo(f"taskchain: {problem} (retry {attempt} in {delay:g}s)", err=True)


def info(
    json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Show the effective settings (secrets masked), the mode, the store, broker and workers.

    Example: taskchain info --json
    """
    from taskchain.engine.health import report

    facts = report(get_settings())
    if json:
        output.emit_json({"schema_version": output.SCHEMA_VERSION, **facts})
        return
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        output.out().print(
            f"{key:<{width}}  {'' if shown is None else shown}", markup=False, highlight=False
        )


def workers(
    json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    timeout: Annotated[
        float,
        typer.Option(min=0.1, max=60, help="Seconds workers get to answer."),
    ] = 1.0,
) -> None:
    """Show the workers online, their queues and active steps, and each queue's depth.

    No worker online is not an error (exit 0); a broker that does not answer is exit 4.

    Example: taskchain workers --json | jq '.queues[] | select(.depth > 0)'
    """
    from taskchain.engine.control import workers as inspect_workers

    report = inspect_workers(timeout=timeout)
    if json:
        output.emit_json({"schema_version": output.SCHEMA_VERSION, **report})
        return
    for line in workers_lines(report):
        output.out().print(line, markup=False, highlight=False)


def workers_lines(report: dict[str, Any]) -> list[str]:
    """`taskchain workers` as plain lines: the queues, then one block per worker."""
    width = max(len("queue"), *(len(q["name"]) for q in report["queues"]))
    lines = [f"{'queue':<{width}}  depth"]
    lines += [f"{q['name']:<{width}}  {q['depth']:>5}" for q in report["queues"]]
    found = report["workers"]
    if not found:
        return [*lines, "", "no workers online"]
    lines.append("")
    for w in found:
        lines.append(
            f"{w['name']}  concurrency {w['concurrency']}  processed {w['processed']}  "
            f"queues {', '.join(w['queues']) or '(none)'}"
        )
        for task in w["active"]:
            what = (
                f"chain {task['chain_id']} step {task['index'] + 1}"
                if task["chain_id"] is not None
                else f"task {task['task_id']}"
            )
            lines.append(f"  running {what} ({task['task']}) since {task['started_at']}")
        if not w["active"]:
            lines.append("  idle")
    lines += ["", f"{len(found)} worker{'s' if len(found) != 1 else ''} online"]
    return lines


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("workers")(workers)
    app.command("info")(info)
