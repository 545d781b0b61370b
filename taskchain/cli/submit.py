"""`taskchain submit`: validate, record, enqueue or run, and report."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from taskchain.cli import _Command, output
from taskchain.errors import InvalidInput
from taskchain.settings import get_settings
from taskchain.timeparse import parse_duration


def _epilog() -> str:
    from taskchain.builtin_types import TEXTS

    # The built-in types, from their texts alone (importing them means pydantic's ~0.1 s).
    types = [details for _, details in TEXTS.values()]
    examples = [
        "Examples:",
        "  taskchain submit math_chain --numbers 1 2 3",
        "  id=$(taskchain submit math_chain --numbers 2 10 --operation power -q)",
        "  taskchain submit math_chain --config '{\"numbers\": [1, 2, 3]}' --wait",
        "  taskchain submit data_chain --config-file chain.yaml",
        "  taskchain submit --batch chains.jsonl -q   # one JSON object per line",
    ]
    codes = (
        "Exit codes: 0 completed (distributed without --wait: queued), 1 failed or cancelled, "
        "2 bad input, 4 broker or store unreachable, 124 --timeout passed, 130 interrupted."
    )
    # "\b" keeps click from re-wrapping a paragraph.
    return "\n\n".join(["Chain types:", *types, "\b\n" + "\n".join(examples), codes])


class _SubmitCommand(_Command):
    """The epilog lists the built-in chain types, built only when the help is shown."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        self.epilog = _epilog()
        super().format_epilog(ctx, formatter)


def submit(
    ctx: typer.Context,
    chain_type: Annotated[
        str | None, typer.Argument(metavar="TYPE", help="math_chain, data_chain or io_chain.")
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Config as JSON (or YAML) text.")
    ] = None,
    config_file: Annotated[
        str | None,
        typer.Option("--config-file", "-f", help="Config file, .json or .yaml ('-' = stdin)."),
    ] = None,
    description: Annotated[
        str, typer.Option("--description", "-d", help="Free text shown in status and list.")
    ] = "",
    chain_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Chain id to use; submitting the same id again returns that chain (idempotent).",
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", "-w", help="Block until the chain finishes; exit with its code."),
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option(help="With --wait: give up after this long (e.g. 90s, 5m) with exit 124."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the chain id.")] = False,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            help="Submit many chains from JSON Lines ('-' = stdin), one per line: "
            '{"type", "config", "description", "id"}. Prints the ids in input order.',
        ),
    ] = None,
) -> None:
    """Submit a chain: validate it, record it, run it (embedded) or queue it (distributed)."""
    from taskchain.chains import get_type
    from taskchain.cli.config_input import load_config_file, load_config_text, parse_type_flags
    from taskchain.engine.submit import submit as submit_chain

    if batch is not None:
        given = [chain_type, config, config_file, chain_id, description or None, *ctx.args]
        if any(given):
            raise InvalidInput("--batch takes the chains from its file: give no TYPE or options")
        _submit_batch(batch, wait=wait, timeout=timeout, quiet=quiet)
    if chain_type is None:
        raise InvalidInput("missing TYPE (math_chain, data_chain or io_chain), or --batch FILE")
    kind = get_type(chain_type)
    raw = load_config_file(config_file) if config_file else {}
    if config:
        raw.update(load_config_text(config, source="--config"))
    raw.update(parse_type_flags(kind, list(ctx.args)))
    limit = parse_duration(timeout, option="--timeout") if timeout is not None else None
    submitted = submit_chain(chain_type, raw, description=description, chain_id=chain_id)
    if quiet:
        typer.echo(submitted.chain_id)
    else:
        typer.echo(submitted.chain_id)
        verb = "submitted" if submitted.created else "already exists:"
        output.say(f"{verb} {chain_type} chain {submitted.chain_id}")
    embedded = get_settings().embedded
    if embedded or wait:
        from taskchain.cli.follow import follow_chain

        # A live table on stderr when it is a terminal (stdout carries the id), else plain lines.
        code = follow_chain(
            submitted.chain_id,
            timeout=limit,
            show=not quiet,
            json_lines=False,
            owner=embedded and submitted.created,
        )
        raise typer.Exit(code)


def _submit_batch(path: str, *, wait: bool, timeout: str | None, quiet: bool) -> None:
    from taskchain.cli.batch import read_batch, wait_all
    from taskchain.engine.submit import PartlyQueued, submit_many

    limit = parse_duration(timeout, option="--timeout") if timeout is not None else None
    try:
        submitted = submit_many(read_batch(path))
    except PartlyQueued as exc:
        for chain_id in exc.queued:  # these run: a script must learn their ids
            typer.echo(chain_id)
        raise
    for one in submitted:
        typer.echo(one.chain_id)
    if not quiet:
        new = sum(one.created for one in submitted)
        output.say(f"submitted {len(submitted)} chains: {new} new, {len(submitted) - new} existed")
    embedded = get_settings().embedded
    if embedded or wait:
        chains = {one.chain_id: embedded and one.created for one in submitted}
        raise typer.Exit(wait_all(chains, timeout=limit, quiet=quiet))
    raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    app.command(
        "submit",
        cls=_SubmitCommand,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(submit)
