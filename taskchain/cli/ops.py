"""Operating commands: worker and info."""

from __future__ import annotations

from typing import Annotated

import typer

from taskchain.cli import output
from taskchain.errors import InvalidInput
from taskchain.settings import get_settings


def worker(
    queues: Annotated[
        str, typer.Option("--queues", "-Q", help="Comma-separated queues to consume.")
    ] = "celery,math,data,io",
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

    Without --wait-for-broker, a broker (or result backend) that does not answer within
    TASKCHAIN_BROKER_TIMEOUT seconds is exit 4, so a process manager can restart the worker.

    Example: TASKCHAIN_BROKER_URL=redis://127.0.0.1:6379/0 taskchain worker -c 4
    """
    from taskchain.engine.worker import run_worker

    if get_settings().embedded:
        raise InvalidInput(
            "no broker configured: in embedded mode `submit` runs chains itself. For workers, "
            "set TASKCHAIN_BROKER_URL (e.g. redis://127.0.0.1:6379/0) or pass --broker-url"
        )
    names = [q.strip() for q in queues.split(",") if q.strip()]
    run_worker(
        queues=names,
        concurrency=concurrency,
        pool=pool,
        loglevel=loglevel,
        hostname=hostname,
        wait_for_broker=wait_for_broker,
        on_retry=_say_retry,
    )


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


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("info")(info)
