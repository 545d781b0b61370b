"""Read commands: status, result, list, stats. They read the store and never import Celery."""

from __future__ import annotations

from typing import Annotated

import typer

from taskchain.cli import output
from taskchain.timeparse import parse_duration, parse_time

# The store (core), Rich's tables (render) and the chain types are imported inside each
# command, so that `--help` of these commands loads none of them.

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
IdArg = Annotated[
    str, typer.Argument(metavar="ID", help="Chain or workflow id, or a unique prefix.")
]


def status(chain_ref: IdArg, json: JsonFlag = False) -> None:
    """Show a chain's status, timings and steps.

    Example: taskchain status 3f2a --json
    """
    from taskchain import core

    kind, found = core.resolve_any(chain_ref)
    if kind == "workflow":
        from taskchain.cli import workflow_view

        raise typer.Exit(workflow_view.show_status(found, json=json))
    view = core.get_chain(found)
    if json:
        output.emit_json(output.chain_json(view))
    else:
        from taskchain.cli import render

        output.out().print(render.chain_view(view))


def result(
    chain_ref: IdArg,
    json: JsonFlag = False,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Block until the chain finishes.")
    ] = False,
    timeout: Annotated[
        str | None, typer.Option(help="With --wait: give up after this long with exit 124.")
    ] = None,
) -> None:
    """Print a chain's result; exit 0 if COMPLETED, 1 if FAILED/CANCELLED/orphaned, 124 if not done.

    An orphaned chain is one whose embedded runner died (see `status`).

    Example: taskchain result 3f2a --wait --timeout 90s --json | jq .result
    """
    from taskchain import core
    from taskchain.store.queries import is_orphaned
    from taskchain.store.tables import Status

    limit = parse_duration(timeout, option="--timeout") if timeout is not None else None
    kind, found = core.resolve_any(chain_ref)
    if kind == "workflow":
        from taskchain.cli import workflow_view

        raise typer.Exit(workflow_view.show_result(found, json=json, wait=wait, timeout=limit))
    view = core.get_chain(found)
    if wait and not view.chain.status.finished and not is_orphaned(view.chain):
        from taskchain.cli.follow import wait_for

        try:
            view = wait_for(view.chain.id, timeout=limit)  # live view on stderr if a terminal
        except core.Orphaned:  # its runner died on the way: answer as without --wait
            view = core.get_chain(view.chain.id)
    chain = view.chain
    orphaned = is_orphaned(chain)
    if orphaned:  # it will not finish on its own: say why, with --json too
        output.say(core.orphan_reason(chain))
    if json:
        output.emit_json(output.result_json(chain))
    elif chain.status == Status.COMPLETED:
        from taskchain.cli.lines import value_text

        typer.echo(value_text(chain.result))
    elif chain.status.finished:
        output.say(f"chain {chain.id} {chain.status.value}: {chain.error or 'no result'}")
    elif not orphaned:
        output.say(f"chain {chain.id} is {chain.status.value}: no result yet (use --wait)")
    raise typer.Exit(1 if orphaned else core.exit_code(chain.status))


def list_(
    status: Annotated[
        list[str] | None, typer.Option("--status", "-s", help="Only these statuses (repeatable).")
    ] = None,
    chain_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only these types (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Created at or after: ISO time or an age like 2h, 3d.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Created before: ISO time or an age.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="At most this many chains (0 = all).")
    ] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many of the newest first.")] = 0,
    json: JsonFlag = False,
    workflows: Annotated[
        bool, typer.Option("--workflows", "-W", help="List workflows instead of chains.")
    ] = False,
) -> None:
    """List chains (or, with --workflows, workflows), newest first.

    Example: taskchain list --status FAILED --since 2h --json
    """
    from taskchain import core

    if workflows:
        from taskchain.cli import workflow_view

        workflow_view.show_list(statuses=status or [], limit=None if limit == 0 else limit,
                                json=json)  # fmt: skip
        return
    chains = core.list_chains(
        statuses=status or [],
        types=chain_type or [],
        since=parse_time(since, option="--since") if since else None,
        until=parse_time(until, option="--until") if until else None,
        limit=None if limit == 0 else limit,
        offset=offset,
    )
    if json:
        output.emit_json([output.chain_summary_json(c) for c in chains])
    elif chains:
        from taskchain.cli import render

        output.out().print(render.chains_table(chains))
    else:
        output.say("no chains")


def stats(json: JsonFlag = False) -> None:
    """Totals by status and by type, durations of finished chains, and workflows by status.

    Example: taskchain stats --json
    """
    from taskchain import core

    totals = core.stats()
    flows = core.workflow_stats()
    if json:
        doc = output.stats_json(totals)
        doc["workflows"] = {"total": sum(flows.values()), "by_status": flows}
        output.emit_json(doc)
    else:
        from taskchain.cli import render

        output.out().print(render.stats_table(totals))
        if any(flows.values()):
            output.out().print(render.workflow_stats_table(flows))


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("result")(result)
    app.command("list")(list_)
    app.command("stats")(stats)
