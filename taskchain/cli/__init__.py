"""The `taskchain` command: a Typer app of thin commands over the core."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeGuard

import typer
import typer.main
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer._click.utils import PacifyFlushWrapper
from typer.core import TyperArgument, TyperCommand, TyperGroup

from taskchain import __version__, settings
from taskchain.cli import lazy
from taskchain.errors import TaskchainError

if TYPE_CHECKING:
    from pydantic import ValidationError

# Start-up cost: `taskchain --help` must not pay for the libraries a command uses (SQLAlchemy,
# pydantic-settings, Celery, Rich's tables). So every module of this package imports the store,
# the settings model, the engine and the renderers inside the functions that use them, and
# only cheap types appear in command signatures (Typer evaluates them at registration).
# tests/cli/test_imports.py checks which modules each command loads.


class _Group(TyperGroup):
    """Turns every TaskchainError into `taskchain: error: ...` and its exit code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        lazy.defer_coercion(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TaskchainError as exc:
            fail(str(exc), exc.exit_code)
        except Exception as exc:
            if not _is_validation_error(exc):
                raise
            # settings from the environment or global options
            from taskchain.chains.base import describe_validation_error

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
        commands = self.commands
        # Each listed from its help alone: `taskchain --help` builds no command.
        look = commands.summary if isinstance(commands, lazy.Commands) else commands.get
        rows = [
            (name, command.get_short_help_str(limit=1000))
            for name in self.list_commands(ctx)
            if (command := look(name)) is not None and not command.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _is_validation_error(exc: BaseException) -> TypeGuard[ValidationError]:
    """A pydantic ValidationError, without importing pydantic: if one was raised, pydantic_core
    is loaded already."""
    pydantic_core = sys.modules.get("pydantic_core")
    return pydantic_core is not None and isinstance(exc, pydantic_core.ValidationError)


class _Command(TyperCommand):
    """A command whose usage line writes arguments as Unix manuals do: `TYPE`, `[ID]`,
    `ID...` (Typer's own puts braces around required ones: `{TYPE}`, `{ID...}...`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from taskchain.cli import complete

        complete.attach(self.params)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        lazy.defer_coercion(self.get_params(ctx))
        return super().parse_args(ctx, args)

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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the app as Typer does, but build only the command that runs (see lazy.py).
        (Typer's own __call__ only adds its pretty tracebacks, which are off here.)"""
        infos, self.registered_commands = self.registered_commands, []
        try:
            group: Any = typer.main.get_command(self)  # its options and sub-groups only
        finally:
            self.registered_commands = infos
        group.commands = lazy.Commands(infos, group.commands, self._build)
        return group(*args, **kwargs)

    def _build(self, info: Any) -> Any:
        return typer.main.get_command_from_info(
            info,
            pretty_exceptions_short=self.pretty_exceptions_short,
            rich_markup_mode=self.rich_markup_mode,
        )


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
