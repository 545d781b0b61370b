"""Start-up cost, guarded by what each command imports (timings are too noisy for a test).

Help and version import none of the libraries a command uses; the read commands import the
store's (SQLAlchemy, SQLModel, pydantic-settings, Rich) and nothing of Celery, polars or
Alembic. Each case runs the CLI in a fresh interpreter, then lists `sys.modules`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.core import TyperCommand
from typer.main import get_command

from taskchain.builtin_types import TEXTS
from taskchain.chains import all_types
from taskchain.cli import COMMANDS, app

#: Never imported by a command that reads the store, nor by help or --version.
ENGINE = {"celery", "kombu", "redis", "billiard", "amqp", "polars", "alembic", "yaml"}
#: What only a command that needs the store or a setting may import.
STORE = {"sqlalchemy", "sqlmodel", "pydantic_settings"}
#: Not for help either: pydantic (~0.1 s; `submit --help` lists the chain types from their
#: texts, not their config models) and Rich (help is Typer's plain formatter).
HELP_EXTRA = {"pydantic", "pydantic_core", "rich"}

_RUN = """
import json, os, sys
sys.argv = ["taskchain", *json.loads(os.environ["TC_ARGS"])]
code = 0
try:
    from taskchain.cli import main
    main()
except SystemExit as exc:
    code = exc.code
with open(os.environ["TC_MODULES"], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def _paths(command: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command's words, sub-commands (`db current`) included."""
    for name, sub in getattr(command, "commands", {}).items():
        yield (*prefix, name)
        yield from _paths(sub, (*prefix, name))


COMMAND_PATHS = sorted(_paths(get_command(app)))


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCHAIN_")}
    env["TASKCHAIN_DATABASE_URL"] = f"sqlite:///{tmp / 'store.db'}"
    env["TASKCHAIN_WORKSPACE"] = str(tmp)
    return env


def imported(tmp: Path, *args: str) -> tuple[int, set[str]]:
    """Run `taskchain ARGS` in a fresh interpreter: its exit code and its top-level modules."""
    code, modules = imported_modules(tmp, *args)
    return code, {name.split(".")[0] for name in modules}


def imported_modules(tmp: Path, *args: str) -> tuple[int, set[str]]:
    """Run `taskchain ARGS` in a fresh interpreter: its exit code and every module it loaded."""
    record = tmp / "modules.json"
    env = {**_env(tmp), "TC_ARGS": json.dumps(args), "TC_MODULES": str(record)}
    subprocess.run(
        [sys.executable, "-c", _RUN], env=env, cwd=tmp, capture_output=True, timeout=120,
        check=True,
    )  # fmt: skip
    found = json.loads(record.read_text())
    return found["code"], set(found["modules"])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store with one finished chain, and its id."""
    tmp = tmp_path_factory.mktemp("imports")
    done = subprocess.run(
        [sys.executable, "-m", "taskchain", "submit", "math_chain", "--numbers", "1", "2", "3",
         "-q"],
        env=_env(tmp), cwd=tmp, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tmp, done.stdout.strip()


def test_every_command_is_covered() -> None:
    assert {"status", "result", "list", "stats", "submit"} <= {p[0] for p in COMMAND_PATHS}
    assert ("db", "current") in COMMAND_PATHS


@pytest.mark.parametrize(
    "args", [(), ("--help",), ("--version",)], ids=["bare", "--help", "--version"]
)
def test_help_and_version_import_no_library_of_a_command(tmp_path: Path, args: tuple) -> None:
    code, modules = imported(tmp_path, *args)
    assert code == (2 if not args else 0)  # bare `taskchain` shows the help, exit 2 (click)
    assert modules & (ENGINE | STORE | HELP_EXTRA) == set()


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=" ".join)
def test_command_help_imports_no_library_of_a_command(tmp_path: Path, path: tuple) -> None:
    code, modules = imported(tmp_path, *path, "--help")
    assert code == 0
    assert modules & (ENGINE | STORE | HELP_EXTRA) == set()


COMMAND_MODULES = {f"taskchain.cli.{module}" for module, _ in COMMANDS.values()}


@pytest.mark.parametrize(
    ("args", "loaded"),
    [(("--help",), set()), (("status", "--help"), {"taskchain.cli.read"}),
     (("db", "current", "--help"), {"taskchain.cli.db"}),
     (("submit", "--help"), {"taskchain.cli.submit"})],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)  # fmt: skip
def test_a_command_loads_its_own_module_alone(tmp_path: Path, args: tuple, loaded: set) -> None:
    code, modules = imported_modules(tmp_path, *args)
    assert code == 0
    assert modules & COMMAND_MODULES == loaded


def test_the_commands_table_matches_the_commands() -> None:
    """`taskchain --help` lists the commands from `COMMANDS` alone: same names, same order,
    same summaries as the commands themselves give."""
    built = get_command(app).commands
    assert list(built) == list(COMMANDS)
    for name, (module, summary) in COMMANDS.items():
        command = built[name]
        assert command.callback is None or command.callback.__module__.endswith(module)
        stand_in = TyperCommand(name, help=summary)
        assert command.get_short_help_str(limit=1000) == stand_in.get_short_help_str(limit=1000)


def test_the_builtin_type_texts_name_every_builtin_type() -> None:
    types = all_types(plugins=False)
    assert list(types) == list(TEXTS)
    for name, (summary, details) in TEXTS.items():
        assert (types[name].summary, types[name].details) == (summary, details)
        assert details.startswith(f"{name}: ")


@pytest.mark.parametrize(
    "args",
    [("status", "{id}"), ("status", "{id}", "--json"), ("result", "{id}"),
     ("result", "{id}", "--json"), ("list",), ("list", "--json"), ("stats",),
     ("stats", "--json")],
    ids=" ".join,
)  # fmt: skip
def test_read_commands_import_no_engine(store: tuple[Path, str], args: tuple) -> None:
    tmp, chain_id = store
    code, loaded = imported_modules(tmp, *(a.format(id=chain_id) for a in args))
    modules = {name.split(".")[0] for name in loaded}
    assert code == 0
    assert modules & ENGINE == set()
    assert modules >= STORE  # the check above looked at a command that did read the store
    # Nor the store's writes or its SQLModel classes (reads select rows of store.tables),
    # nor the workflow views, for a chain; nor Typer's pydantic adapters, for values that are
    # already of their option's type (lazy.Coercion).
    unwanted = {
        "taskchain.store.transitions", "taskchain.store.models", "taskchain.store.workflow_model",
        "taskchain.store.workflows", "taskchain.cli.workflow_view", "typer._adapters",
    }  # fmt: skip
    assert loaded & unwanted == set()
    if args == ("result", "{id}"):  # a value, printed plain: no Rich at all (cli/lines.py)
        assert "rich" not in modules


def test_an_embedded_submit_imports_no_celery(store: tuple[Path, str]) -> None:
    """Embedded, steps run in this process (engine/embedded.py): no broker, no Celery app."""
    tmp, _ = store
    code, modules = imported(tmp, "submit", "math_chain", "--numbers", "1", "2", "3", "-q")
    assert code == 0
    assert modules & ENGINE == set()
    assert modules >= STORE
