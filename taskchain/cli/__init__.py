"""The `taskchain` command: a Typer app of thin commands over the core."""

from __future__ import annotations

import gc
import importlib
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

    def list_commands(self, ctx: Any) -> list[str]:
        # Typer's lists `self.commands.items()`, which would build every command.
        return list(self.commands)

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

    def _build(self, info: Any) -> Any:
        return typer.main.get_command_from_info(
            info,
            pretty_exceptions_short=self.pretty_exceptions_short,
            rich_markup_mode=self.rich_markup_mode,
        )


#: Every command, in the order `taskchain --help` lists them: the module that registers it,
#: and the line that list shows for it (its docstring's summary; tests/cli/test_imports.py
#: keeps the two equal). Listing commands, or running one, imports no other command's module.
COMMANDS: dict[str, tuple[str, str]] = {
    "submit": ("submit", "Submit a chain: validate it, record it, run it (embedded) or queue "
               "it (distributed)."),
    "run": ("run", "Run a workflow: jobs of any chain type wired by `needs`, in parallel "
            "where they can be."),
    "status": ("read", "Show a chain's status, timings and steps."),
    "result": ("read", "Print a chain's result; exit 0 if COMPLETED, 1 if "
               "FAILED/CANCELLED/orphaned, 124 if not done."),
    "list": ("read", "List chains (or, with --workflows, workflows), newest first."),
    "stats": ("read", "Totals by status and by type, durations of finished chains, and "
              "workflows by status."),
    "watch": ("watch", "Follow a chain step by step until it finishes; exit 0 if it "
              "COMPLETED, 1 if not."),
    "delete": ("manage", "Delete chains, or workflows with all their jobs; running ones are "
               "cancelled first."),
    "prune": ("manage", "Remove finished chains and workflows older than an age, their steps "
              "and folders."),
    "cancel": ("manage", "Cancel a chain: no further step starts; queued steps are revoked."),
    "retry": ("manage", "Re-run a FAILED, CANCELLED or orphaned chain from its first "
              "unfinished step."),
    "worker": ("ops", "Start a Celery worker for the chain queues (distributed mode)."),
    "workers": ("ops", "Show the workers online, their queues and active steps, and each "
                "queue's depth."),
    "info": ("ops", "Show the effective settings (secrets masked), the mode, the store, "
             "broker and workers."),
    "db": ("db", "Show or upgrade the store's schema version."),
}  # fmt: skip


class _Root(_Typer):
    """The `taskchain` app. Its commands are registered when something asks for them (Typer's
    `get_command`, the test runner); running it builds only the command that runs, from the
    module `COMMANDS` names for it, and `--help` lists the others from `COMMANDS` alone."""

    _loaded = False
    _bare = False

    @property
    def registered_commands(self) -> list[Any]:
        self._load()
        return self._commands

    @registered_commands.setter
    def registered_commands(self, value: list[Any]) -> None:
        self._commands = value

    @property
    def registered_groups(self) -> list[Any]:
        self._load()
        return self._groups

    @registered_groups.setter
    def registered_groups(self, value: list[Any]) -> None:
        self._groups = value

    def _load(self) -> None:
        if not (self._loaded or self._bare):
            self._loaded = True
            for module in dict.fromkeys(module for module, _ in COMMANDS.values()):
                importlib.import_module(f"{__name__}.{module}").register(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the app as Typer does, but build only the command that runs (see lazy.py).
        (Typer's own __call__ only adds its pretty tracebacks, which are off here.)"""
        if self._loaded:  # registered already (a test's runner): build from what is there
            commands, groups, self._commands, self._groups = self._commands, self._groups, [], []
            try:
                group: Any = typer.main.get_command(self)  # its options only
            finally:
                self._commands, self._groups = commands, groups
            infos = {lazy.name_of(info): info for info in commands}
            infos.update((str(info.name), info) for info in groups)
            build = lambda name: self._build_info(infos[name])  # noqa: E731
        else:
            self._bare = True
            try:
                group = typer.main.get_command(self)
            finally:
                self._bare = False
            build = self._build_named
        summaries = {name: summary for name, (_, summary) in COMMANDS.items()}
        group.commands = lazy.Commands(summaries, build)
        return group(*args, **kwargs)

    def _build_named(self, name: str) -> Any:
        """Command `name`, from its module alone, registered on a scratch app."""
        scratch = _Typer(rich_markup_mode=self.rich_markup_mode)
        importlib.import_module(f"{__name__}.{COMMANDS[name][0]}").register(scratch)
        for info in [*scratch.registered_commands, *scratch.registered_groups]:
            if lazy.name_of(info) == name:
                return self._build_info(info)
        raise LookupError(f"module {COMMANDS[name][0]} registers no command {name!r}")

    def _build_info(self, info: Any) -> Any:
        if isinstance(info, typer.models.TyperInfo):
            return typer.main.get_group_from_info(
                info,
                pretty_exceptions_short=self.pretty_exceptions_short,
                suggest_commands=self.suggest_commands,
                rich_markup_mode=self.rich_markup_mode,
            )
        return self._build(info)


def fail_line(message: str) -> None:
    from taskchain.cli import output

    output.error(message)


def fail(message: str, code: int) -> None:
    fail_line(message)
    raise typer.Exit(code)


app = _Root(
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
    task_events: Annotated[
        bool | None,
        typer.Option(
            "--task-events/--no-task-events",
            help="Send Celery task events, for Flower and `celery events` (default on) "
            "[env TASKCHAIN_TASK_EVENTS].",
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
        task_events=task_events,
    )


def main() -> None:
    try:
        # The name, not `python -m taskchain`: usage lines, and the _TASKCHAIN_COMPLETE
        # variable that shell completion sets, are the same however the command was started.
        app(prog_name="taskchain")
    finally:
        # On the way out Python collects garbage over every object still alive: the tables,
        # models and caches that SQLAlchemy, pydantic and Rich built, ~0.1 s of CPU, as much
        # as a read command's own work. Frozen, they are skipped; nothing is left to collect
        # that matters to a process that ends (atexit handlers and stream flushes still run).
        gc.freeze()
