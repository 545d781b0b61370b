"""taskchain's Celery app: its queue names, its configuration, the worker's command line, and
the module `celery -A taskchain` loads. No broker needed."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from taskchain import settings
from taskchain.engine.app import celery_config
from taskchain.engine.queues import family_of, queue_name, queue_names, step_task_name
from taskchain.engine.worker import WorkerOptions, celery_argv
from taskchain.errors import InvalidInput
from tests.support.cli import invoke


def test_queues_are_the_prefix_and_the_family_and_never_celerys_own() -> None:
    assert queue_names() == [
        "taskchain.default",
        "taskchain.math",
        "taskchain.data",
        "taskchain.io",
    ]
    assert queue_name("math", "acme-") == "acme-math"
    # Steps recorded under the old default family go to the default queue.
    assert queue_name("celery") == "taskchain.default"
    assert [family_of(n) for n in ("math", "taskchain.io", "celery", "gpu", "acme.math")] == [
        "math", "io", "default", None, None,
    ]  # fmt: skip
    assert family_of("acme.math", "acme.") == "math"


def test_step_task_names_read_like_the_chain_type_and_operation() -> None:
    assert [step_task_name(t, n) for t, n in [
        ("math_chain", "add 2"), ("data_chain", "clean"), ("io_chain", "copy → backup/"),
        ("probe_chain", "probe 3"), ("odd_chain", ""),
    ]] == ["math_chain.add", "data_chain.clean", "io_chain.copy", "probe_chain.probe", "odd_chain"]  # fmt: skip


def config(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name, value in env.items():
        monkeypatch.setenv(f"TASKCHAIN_{name.upper()}", value)
    settings.configure()
    return celery_config(settings.get_settings())


def test_the_app_names_queues_exchanges_control_and_events_from_the_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = config(monkeypatch, broker_url="redis://127.0.0.1:1/0", queue_prefix="acme.")
    assert [(q.name, q.exchange.name, q.routing_key) for q in conf["task_queues"]] == [
        (f"acme.{f}", f"acme.{f}", f"acme.{f}") for f in ("default", "math", "data", "io")
    ]
    assert (conf["task_default_queue"], conf["task_default_exchange"]) == ("acme.default",) * 2
    assert (conf["control_exchange"], conf["event_exchange"]) == ("acme.control", "acme.events")
    assert (conf["task_send_sent_event"], conf["worker_send_task_events"]) == (True, True)


@pytest.mark.parametrize("value", ["false", "0", "off", "no"])
def test_task_events_off_sends_none(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    conf = config(monkeypatch, broker_url="redis://127.0.0.1:1/0", task_events=value)
    assert "task_send_sent_event" not in conf and "worker_send_task_events" not in conf


def test_a_task_events_value_that_is_no_switch_is_exit_2(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCHAIN_TASK_EVENTS", "sometimes")
    result = invoke(runner, "list")
    assert result.exit_code == 2
    assert result.stderr.startswith("taskchain: error: invalid setting TASKCHAIN_TASK_EVENTS: ")
    assert result.stderr.count("\n") == 1


def test_embedded_sends_no_events_nobody_could_receive(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = config(monkeypatch)
    assert "task_send_sent_event" not in conf and "worker_send_task_events" not in conf
    assert conf["task_default_queue"] == "taskchain.default"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("acme/", "queue prefix 'acme/' may hold only letters, digits and '.', '_', '-', ':'"),
        ("x" * 65, "String should have at most 64 characters"),
    ],
)
def test_a_bad_queue_prefix_is_refused(runner: CliRunner, value: str, message: str) -> None:
    result = invoke(runner, "--queue-prefix", value, "info")
    assert result.exit_code == 2
    assert result.stderr == f"taskchain: error: invalid setting --queue-prefix: {message}\n"


def test_info_shows_the_prefix_and_the_queues(runner: CliRunner) -> None:
    import json

    result = invoke(runner, "--queue-prefix", "acme:", "info", "--json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["queue_prefix"] == "acme:"
    assert facts["queues"] == ["acme:default", "acme:math", "acme:data", "acme:io"]


def test_the_worker_command_line_names_queues_events_and_options() -> None:
    options = WorkerOptions(
        concurrency=4, hostname="w1@%h", max_tasks_per_child=100, max_memory_per_child=500_000,
        autoscale=" 8, 2", prefetch_multiplier=2, extra=("--without-gossip",),
    )  # fmt: skip
    assert celery_argv(["math", "taskchain.data", "celery", "math"], options) == [
        "worker", "-Q", "taskchain.math,taskchain.data,taskchain.default", "-c", "4",
        "-P", "prefork", "-l", "INFO", "-n", "w1@%h", "-E",
        "--max-tasks-per-child", "100", "--max-memory-per-child", "500000",
        "--autoscale", "8,2", "--prefetch-multiplier", "2", "--without-gossip",
    ]  # fmt: skip
    assert "-E" not in celery_argv(["io"], WorkerOptions(events=False))


@pytest.mark.parametrize(
    ("queues", "options", "message"),
    [
        (["gpu"], WorkerOptions(), "unknown queue 'gpu' (known: default, math, data, io)"),
        ([], WorkerOptions(), "no queue given (known: default, math, data, io)"),
        (
            ["math"],
            WorkerOptions(pool="gevent"),
            "unknown pool 'gevent' (known: prefork, solo, threads)",
        ),
        (
            ["math"],
            WorkerOptions(autoscale="2,8"),
            "--autoscale '2,8': give MAX,MIN processes, MAX at least 1 and MIN at most MAX (e.g. 8,2)",
        ),
        (
            ["math"],
            WorkerOptions(autoscale="lots"),
            "--autoscale 'lots': give MAX,MIN processes, MAX at least 1 and MIN at most MAX (e.g. 8,2)",
        ),
    ],
)
def test_bad_worker_options_are_refused(
    queues: list[str], options: WorkerOptions, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        celery_argv(queues, options)
    assert str(caught.value) == message


def test_the_worker_command_passes_events_and_celery_options_through(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskchain.engine import worker

    calls: list[tuple[list[str], WorkerOptions]] = []

    def fake_run_worker(*, queues: list[str], options: WorkerOptions, **_kw: Any) -> int:
        calls.append((queues, options))
        return 0

    monkeypatch.setattr(worker, "run_worker", fake_run_worker)
    broker = ["--broker-url", "redis://127.0.0.1:1/0", "worker"]
    for args in (
        ["-c", "2", "--", "--max-tasks-per-child", "100", "--autoscale", "8,2"],
        ["-E", "-Q", "math,data", "--max-tasks-per-child", "5", "--autoscale", "4,1"],
        ["--no-events", "--prefetch-multiplier", "4"],
    ):
        result = invoke(runner, *broker, *args)
        assert result.exit_code == 0, result.output
    # With task events off in the settings, a worker sends none unless -E says so.
    monkeypatch.setenv("TASKCHAIN_TASK_EVENTS", "false")
    for args in ([], ["-E"]):
        assert invoke(runner, *broker, *args).exit_code == 0
    monkeypatch.setenv("TASKCHAIN_TASK_EVENTS", "true")
    assert invoke(runner, "--no-task-events", *broker).exit_code == 0
    assert [(q, o.events, o.max_tasks_per_child, o.autoscale, o.prefetch_multiplier, o.extra) for q, o in calls] == [
        (["default", "math", "data", "io"], True, None, None, None,
         ("--max-tasks-per-child", "100", "--autoscale", "8,2")),
        (["math", "data"], True, 5, "4,1", None, ()),
        (["default", "math", "data", "io"], False, None, None, 4, ()),
        (["default", "math", "data", "io"], False, None, None, None, ()),
        (["default", "math", "data", "io"], True, None, None, None, ()),
        (["default", "math", "data", "io"], False, None, None, None, ()),
    ]  # fmt: skip


def run_python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TASKCHAIN_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_celery_dash_a_taskchain_finds_the_app_built_from_the_settings(tmp_path: Any) -> None:
    # What `celery -A taskchain ...` does to find the app (celery.app.utils.find_app).
    out = run_python(
        "from celery.app.utils import find_app\n"
        "app = find_app('taskchain')\n"
        "print(type(app).__name__, app.main, app.conf.broker_url, app.conf.task_default_queue,"
        " app.conf.control_exchange, sorted(t for t in app.tasks if t.startswith('taskchain')))",
        TASKCHAIN_BROKER_URL="redis://127.0.0.1:1/0",
        TASKCHAIN_QUEUE_PREFIX="acme.",
        TASKCHAIN_DATABASE_URL=f"sqlite:///{tmp_path / 's.db'}",
    )
    assert out == (
        "Celery taskchain redis://127.0.0.1:1/0 acme.default acme.control ['taskchain.run_step']\n"
    )


def test_read_commands_import_neither_celery_nor_kombu_nor_redis_nor_polars(
    tmp_path: Any,
) -> None:
    out = run_python(
        "import sys\n"
        "from taskchain.cli import app\n"
        "for args in (['list'], ['stats', '--json'], ['status', 'nope'], ['result', 'nope']):\n"
        "    try:\n"
        "        app(args, prog_name='taskchain')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('celery', 'kombu', 'redis', 'polars', 'taskchain.celery')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))",
        TASKCHAIN_BROKER_URL="redis://127.0.0.1:1/0",
        TASKCHAIN_DATABASE_URL=f"sqlite:///{tmp_path / 's.db'}",
        TASKCHAIN_WORKSPACE=str(tmp_path),
    )
    assert out.splitlines()[-1] == "[]"
