"""Commands that change records: delete, prune, cancel, retry."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from taskchain.cli import output
from taskchain.cli.follow import Interrupted
from taskchain.errors import InvalidInput
from taskchain.settings import get_settings

# `core` (the store) is imported inside each command, so that `--help` does not load it.


def delete(
    chain_refs: Annotated[
        list[str],
        typer.Argument(metavar="ID...", help="Chain or workflow ids, or unique prefixes."),
    ],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask; required when stdin is not a terminal.")
    ] = False,
) -> None:
    """Delete chains, or workflows with all their jobs; running ones are cancelled first.

    Every id is checked before anything goes: a workflow's job alone is refused (delete its
    workflow). Asks first (on stderr) unless --yes. Answering anything but yes deletes nothing
    and exits 0, as `rm -i` does; Ctrl-C or end of input at the question exits 130.

    Example: taskchain delete 3f2a 9bc1 --yes
    """
    from taskchain import core

    doomed = core.to_delete(chain_refs)
    if not yes:
        if not _interactive():
            raise InvalidInput("refusing to delete without --yes when stdin is not a terminal")
        if not _confirm(f"Delete {_what(doomed)}?"):
            output.say("nothing deleted")
            return
    core.delete(doomed)
    for wf_id, jobs in doomed.workflows.items():
        output.say(f"deleted workflow {wf_id} and its {jobs} job chain(s)")
    for chain_id in doomed.chains:
        output.say(f"deleted {chain_id}")


def _what(doomed: Any) -> str:
    """`1 workflow(s) (3 job chains): 9bc1...` and `2 chain(s): 3f2a..., 77e0...`."""
    parts = []
    if doomed.workflows:
        jobs = sum(doomed.workflows.values())
        ids = ", ".join(i[:12] for i in doomed.workflows)
        parts.append(f"{len(doomed.workflows)} workflow(s) ({jobs} job chains): {ids}")
    if doomed.chains:
        parts.append(f"{len(doomed.chains)} chain(s): {', '.join(i[:12] for i in doomed.chains)}")
    return " and ".join(parts)


def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Age since the chain finished: 30d, 12h, 90m, seconds.",
        ),
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", "-s", help="Only these: COMPLETED, FAILED, CANCELLED (repeatable)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; remove nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask; required when stdin is not a terminal.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Remove finished chains and workflows older than an age, their steps and folders.

    Only COMPLETED, FAILED and CANCELLED chains are removed (never PENDING or RUNNING), counted
    from when they finished; in batches of 500 chains, so the store stays usable meanwhile.
    A workflow's jobs are never removed alone: a finished workflow goes whole, by its own
    status and finish. Workers do the same every hour when TASKCHAIN_RETENTION is set.

    Example: taskchain prune --older-than 30d --status COMPLETED --yes
    """
    from datetime import timedelta

    from taskchain.store import prune as retention
    from taskchain.timeparse import iso, parse_duration

    age = parse_duration(older_than, option="--older-than")
    statuses = _prunable(status or [])
    try:
        before = retention.utcnow() - timedelta(seconds=age)
    except OverflowError:
        raise InvalidInput(f"--older-than {older_than!r} is too far in the past") from None
    if not dry_run and not yes:
        if not _interactive():
            raise InvalidInput("refusing to prune without --yes when stdin is not a terminal")
        count = retention.prune(before=before, statuses=statuses, dry_run=True)
        what = f"{count.chains} finished chain(s)"
        if count.workflows:
            what += f" and {count.workflows} workflow(s) ({count.jobs} job chains)"
        if not (count.chains or count.workflows) or not _confirm(
            f"Delete {what} older than {older_than}?"
        ):
            output.say("nothing pruned")
            return
    done = retention.prune(before=before, statuses=statuses, dry_run=dry_run)
    if json:
        output.emit_json(
            {"dry_run": dry_run, "before": iso(before), "statuses": [s.value for s in statuses],
             "chains": done.chains, "steps": done.steps, "folders": done.folders,
             "by_status": {s.value: done.by_status.get(s.value, 0) for s in statuses},
             "workflows": done.workflows, "jobs": done.jobs,
             "workflows_by_status": {
                 s.value: done.workflows_by_status.get(s.value, 0) for s in statuses}}
        )  # fmt: skip
        return
    verb = "would prune" if dry_run else "pruned"
    flows = f" and {done.workflows} workflow(s) ({done.jobs} job chains)" if done.workflows else ""
    output.say(
        f"{verb} {done.chains} chain(s){flows}, {done.steps} step(s), {done.folders} folder(s) "
        f"finished before {iso(before)}"
    )


def _prunable(given: list[str]) -> list[Any]:
    from taskchain.store.models import Status
    from taskchain.store.prune import PRUNABLE

    if not given:
        return list(PRUNABLE)
    names = [n.strip().upper() for g in given for n in g.split(",") if n.strip()]
    for name in names:
        if name not in {s.value for s in PRUNABLE}:
            raise InvalidInput(
                f"--status {name!r}: prune removes only finished chains "
                "(COMPLETED, FAILED, CANCELLED)"
            )
    return [Status(n) for n in dict.fromkeys(names)]


def _confirm(question: str) -> bool:
    """Ask on stderr, as `rm -i` does (stdout is for data); yes is an answer starting with y.
    Ctrl-C or end of input: Interrupted (exit 130)."""
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if not answer:  # end of input (Ctrl-D), or Ctrl-C
        sys.stderr.write("\n")  # end the question's line before the message
        raise Interrupted("interrupted; nothing deleted")
    return answer.strip().lower().startswith("y")


def _interactive() -> bool:
    """Someone can answer a question: stdin is a terminal."""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):  # closed or replaced stdin
        return False


def cancel(
    chain_ref: Annotated[str, typer.Argument(metavar="ID", help="Chain id or unique prefix.")],
    terminate: Annotated[
        bool, typer.Option(help="Also kill the step that is running now.")
    ] = False,
) -> None:
    """Cancel a chain: no further step starts; queued steps are revoked.

    Example: taskchain cancel 3f2a
    """
    from taskchain import core

    kind, chain_id = core.resolve_any(chain_ref)
    if kind == "workflow":
        from taskchain.cli.workflow_view import cancel_workflow

        return cancel_workflow(chain_id)
    if core.cancel(chain_id, terminate=terminate):
        output.say(f"cancelled {chain_id}")
    else:
        view = core.get(chain_id)
        output.say(f"chain {chain_id} already {view.chain.status.value}; nothing to cancel")


def retry(
    chain_ref: Annotated[str, typer.Argument(metavar="ID", help="Chain id or unique prefix.")],
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Block until it finishes.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Re-run a FAILED, CANCELLED or orphaned chain from its first unfinished step.

    Completed steps keep their results; the run is a new attempt on the same chain. A chain is
    orphaned when the embedded `submit` that ran it died (its runner's lease expired).

    Example: taskchain retry 3f2a --wait
    """
    from taskchain import core
    from taskchain.engine.submit import retry as retry_chain

    kind, chain_id = core.resolve_any(chain_ref)
    if kind == "workflow":
        from taskchain.cli.workflow_view import retry_workflow

        raise typer.Exit(retry_workflow(chain_id, wait=wait, quiet=quiet))
    first = retry_chain(chain_id)
    if not quiet:
        output.say(f"retrying chain {chain_id} from step {first + 1}")
    if get_settings().embedded or wait:
        from taskchain.cli.follow import follow_chain

        embedded = get_settings().embedded
        code = follow_chain(
            chain_id, timeout=None, show=not quiet, json_lines=False, owner=embedded
        )
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("delete")(delete)
    app.command("prune")(prune)
    app.command("cancel")(cancel)
    app.command("retry")(retry)
