"""The `taskchain` command: a Typer app of thin commands over the core."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer._click.utils import PacifyFlushWrapper
from typer.core import TyperArgument, TyperCommand, TyperGroup

from taskchain import __version__, settings
from taskchain.chains.base import describe_validation_error
from taskchain.errors import TaskchainError


class _Group(TyperGroup):
    """Turns every TaskchainError into `taskchain: error: ...` and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TaskchainError as exc:
            fail(str(exc), exc.exit_code)
        except ValidationError as exc:  # settings from the environment or global options
            fail(f"invalid setting: {describe_validation_error(exc)}", 2)
        except KeyboardInterrupt:
            fail("interrupted", 130)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """The option parser's errors in the one form every error takes, on one line:
        `taskchain: error: Missing argument 'ID...' (see 'taskchain delete --help')`."""
        call = {"args": args, "prog_name": prog_name, "complete_var": complete_var,
                "windows_expand_args": windows_expand_args, **extra}  # fmt: skip
        if not standalone_mode:
            return super().main(standalone_mode=False, **call)
        try:
            code = super().main(standalone_mode=False, **call)
        except NoArgsIsHelpError as exc:  # bare `taskchain`: the help, as before
            exc.show()
            sys.exit(exc.exit_code)
        except ClickException as exc:
            where = exc.ctx.command_path if isinstance(exc, UsageError) and exc.ctx else "taskchain"
            fail_line(f"{exc.format_message().rstrip('.')} (see '{where} --help')")
            sys.exit(exc.exit_code)
        except typer.Abort:  # Ctrl-C or end of input at a prompt
            fail_line("interrupted")
            sys.exit(130)
        except BrokenPipeError:  # `taskchain list | head`: the reader left; say nothing
            sys.stdout = PacifyFlushWrapper(sys.stdout)
            sys.stderr = PacifyFlushWrapper(sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # Each command's whole one-line summary, wrapped if need be, never cut with "...".
        rows = [
            (name, command.get_short_help_str(limit=1000))
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _Command(TyperCommand):
    """A command whose usage line writes arguments as Unix manuals do: `TYPE`, `[ID]`,
    `ID...` (Typer's own puts braces around required ones: `{TYPE}`, `{ID...}...`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from taskchain.cli import complete

        complete.attach(self.params)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "ARG").upper()
                if param.nargs != 1 and not name.endswith("..."):
                    name += "..."
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class _Typer(typer.Typer):
    """Every command is a `_Command` unless it asks for another class."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or _Command, **kwargs)


def fail_line(message: str) -> None:
    from taskchain.cli import output

    output.error(message)


def fail(message: str, code: int) -> None:
    fail_line(message)
    raise typer.Exit(code)


app = _Typer(
    cls=_Group,
    name="taskchain",
    help="Run chains of jobs from a terminal or a CI script. See `taskchain COMMAND --help`.",
    no_args_is_help=True,
    # --install-completion / --show-completion; ids, types and statuses complete (complete.py)
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"taskchain {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    broker_url: Annotated[
        str | None,
        typer.Option(help="Celery broker URL [env TASKCHAIN_BROKER_URL]; unset = embedded mode."),
    ] = None,
    result_backend: Annotated[
        str | None, typer.Option(help="Celery result backend [env TASKCHAIN_RESULT_BACKEND].")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the store [env TASKCHAIN_DATABASE_URL].")
    ] = None,
    workspace: Annotated[
        Path | None,
        typer.Option(help="Folder chain paths are relative to [env TASKCHAIN_WORKSPACE]."),
    ] = None,
    task_time_limit: Annotated[
        int | None, typer.Option(help="Seconds a step may run [env TASKCHAIN_TASK_TIME_LIMIT].")
    ] = None,
    step_lease: Annotated[
        int | None,
        typer.Option(help="Seconds a step's claim lasts unrenewed [env TASKCHAIN_STEP_LEASE]."),
    ] = None,
    redispatch_after: Annotated[
        float | None,
        typer.Option(
            help="Seconds before a queued step is re-sent [env TASKCHAIN_REDISPATCH_AFTER]."
        ),
    ] = None,
    broker_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to reach the broker [env TASKCHAIN_BROKER_TIMEOUT]."),
    ] = None,
    store_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to wait for a locked store [env TASKCHAIN_STORE_TIMEOUT]."),
    ] = None,
    retention: Annotated[
        str | None,
        typer.Option(
            help="Workers prune finished chains older than this, e.g. 30d "
            "[env TASKCHAIN_RETENTION]; unset = keep forever."
        ),
    ] = None,
    plugins: Annotated[
        str | None,
        typer.Option(
            help="Modules with extra chain types, comma-separated [env TASKCHAIN_PLUGINS]."
        ),
    ] = None,
    queue_prefix: Annotated[
        str | None,
        typer.Option(
            help="Put before each queue family to name its queue (default `taskchain.`) "
            "[env TASKCHAIN_QUEUE_PREFIX]."
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Global options; every one can also be set as a TASKCHAIN_* environment variable."""
    settings.configure(
        broker_url=broker_url,
        result_backend=result_backend,
        database_url=database_url,
        workspace=workspace,
        task_time_limit=task_time_limit,
        step_lease=step_lease,
        redispatch_after=redispatch_after,
        broker_timeout=broker_timeout,
        store_timeout=store_timeout,
        plugins=plugins,
        retention=retention,
        queue_prefix=queue_prefix,
    )


def _register() -> None:
    from taskchain.cli import db, manage, ops, read, run, submit, watch

    for module in (submit, run, read, watch, manage, ops, db):
        module.register(app)


_register()


def main() -> None:
    # The name, not `python -m taskchain`: usage lines, and the _TASKCHAIN_COMPLETE variable
    # that shell completion sets, are the same however the command was started.
    app(prog_name="taskchain")
