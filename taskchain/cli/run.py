"""`taskchain run FILE`: validate a workflow file whole, record it, start it, follow it."""

from __future__ import annotations

from typing import Annotated

import typer

from taskchain.cli import output
from taskchain.settings import get_settings
from taskchain.timeparse import parse_duration


def run(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Workflow file, .yaml or .json.")],
    workflow_id: Annotated[
        str | None,
        typer.Option(
            "--id", help="Workflow id to use; running the same id again returns it (idempotent)."
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", "-w", help="Block until the workflow finishes; exit with its code."),
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option(help="With --wait: give up after this long (e.g. 90s, 5m) with exit 124."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the workflow id.")
    ] = False,
    json: Annotated[
        bool, typer.Option("--json", help="Print the workflow (as `status --json`) at the end.")
    ] = False,
) -> None:
    """Run a workflow: jobs of any chain type wired by `needs`, in parallel where they can be.

    The whole file is checked before anything is recorded (exit 2 naming the job and the
    field). Embedded, the jobs run in this process and the command returns when the workflow
    has finished; distributed, it returns once the first jobs are queued, unless --wait.
    Exit codes: 0 completed (distributed without --wait: started), 1 a job failed or the
    workflow was cancelled, 2 bad file, 4 broker or store unreachable, 124 --timeout passed.

    Example: id=$(taskchain run examples/workflows/nightly.yaml -q) && taskchain status "$id"
    """
    from taskchain.engine import workflow as engine
    from taskchain.workflows import spec

    limit = parse_duration(timeout, option="--timeout") if timeout is not None else None
    loaded = spec.load(file, workspace=get_settings().workspace)
    started = engine.run(loaded, workflow_id=workflow_id)
    if not json:
        typer.echo(started.workflow_id)
    if not quiet and not json:
        verb = "started" if started.created else "already exists:"
        output.say(f"{verb} workflow {loaded.name} {started.workflow_id} ({len(loaded.jobs)} jobs)")
    code = 0
    if get_settings().embedded or wait:
        from taskchain.cli.workflow_view import follow

        code = follow(
            started.workflow_id, timeout=limit, show=not quiet and not json, json_lines=False,
            to_stdout=False,
        )  # fmt: skip
    if json:
        from taskchain import core
        from taskchain.cli.workflow_view import workflow_json

        output.emit_json(workflow_json(core.get_workflow(started.workflow_id)))
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
