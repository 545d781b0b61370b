"""examples/deploy names only real things: every `taskchain` command line parses with the
CLI's own option parser, every TASKCHAIN_* variable is a setting with a valid value."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from taskchain.cli import app
from taskchain.settings import Settings

DEPLOY = Path(__file__).parents[2] / "examples" / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
UNIT = configparser.ConfigParser(interpolation=None, strict=False)
UNIT.optionxform = str  # type: ignore[assignment,method-assign]
UNIT.read_string((DEPLOY / "taskchain-worker@.service").read_text())


def parse_taskchain(argv: list[str]) -> Any:
    """The command `argv` names, its options parsed (types, choices) as the CLI would."""
    assert argv[0].endswith("taskchain"), argv
    command: Any = get_command(app)  # (Typer's own vendored click: duck-typed here)
    args = list(argv[1:])
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        assert args[0] in command.commands, f"no command {args[0]!r} in {argv}"
        command = command.commands[args.pop(0)]
    command.make_context(command.name or "taskchain", args)  # raises on an unknown option
    return command


def settings_in(env: dict[str, str]) -> dict[str, str]:
    fields = set(Settings.model_fields)
    names = {k.removeprefix("TASKCHAIN_").lower(): v for k, v in env.items()
             if k.startswith("TASKCHAIN_")}  # fmt: skip
    assert set(names) <= fields, set(names) - fields
    return names


def check_values(values: dict[str, str]) -> None:
    # The workspace is a folder on the deployed machine, not here.
    Settings(**{k: v for k, v in values.items() if k != "workspace"})


def test_every_taskchain_service_runs_a_real_command() -> None:
    ran = {}
    for name, service in SERVICES.items():
        command = service.get("command")
        if command and command[0] == "taskchain":
            ran[name] = parse_taskchain(command).name
    assert ran == {"migrate": "upgrade", "worker-math": "worker", "worker-data": "worker",
                   "worker-io": "worker"}  # fmt: skip
    queues = {n: s["command"][s["command"].index("--queues") + 1] for n, s in SERVICES.items()
              if n.startswith("worker-")}  # fmt: skip
    assert queues == {"worker-math": "math", "worker-data": "data", "worker-io": "io"}


def test_flower_runs_on_taskchain_s_celery_app() -> None:
    assert SERVICES["flower"]["command"][:4] == ["celery", "-A", "taskchain", "flower"]


def test_workers_start_after_the_schema_upgrade() -> None:
    assert SERVICES["migrate"]["restart"] == "no"
    for name in ("worker-math", "worker-data", "worker-io", "flower"):
        assert SERVICES[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_setting_is_real_and_valid(name: str) -> None:
    env = SERVICES[name].get("environment") or {}
    if isinstance(env, dict):
        check_values(settings_in({k: str(v) for k, v in env.items()}))


def test_the_compose_file_configures_the_store_the_broker_and_retention() -> None:
    env = SERVICES["worker-math"]["environment"]
    assert set(settings_in(env)) == {"broker_url", "database_url", "workspace", "retention",
                                     "step_lease", "task_time_limit"}  # fmt: skip


def test_the_systemd_unit_runs_a_real_worker() -> None:
    service = UNIT["Service"]
    argv = shlex.split(service["ExecStart"].replace("%i", "math").replace("%H", "host"))
    assert parse_taskchain(argv).name == "worker"
    assert argv[argv.index("--queues") + 1] == "math"
    key, _, value = service["Environment"].partition("=")
    check_values({**settings_in({key: value})})
    assert (service["KillSignal"], service["Restart"]) == ("SIGTERM", "on-failure")
