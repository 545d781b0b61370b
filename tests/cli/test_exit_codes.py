"""Every exit code of the contract, provoked for real: 0, 1, 2, 3, 4, 124, 130."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain import core
from taskchain.cli import app, watch
from taskchain.engine import wait
from taskchain.errors import StoreUnavailable
from taskchain.store import ChainRecord, Status
from taskchain.store.queries import ChainView
from tests.support import proc
from tests.support.probe import Gates
from tests.support.terminal import running_submit
from tests.support.waiting import wait_until

DOWN_STORE = "postgresql://x@127.0.0.1:1/none"
DOWN_BROKER = "redis://127.0.0.1:1/0"


def code(runner: CliRunner, *args: str) -> int:
    return runner.invoke(app, list(args)).exit_code


def submitted(runner: CliRunner, *numbers: str, operation: str = "add", code: int = 0) -> str:
    """Submit a math chain (it runs at once: embedded), check its exit code; its id."""
    result = runner.invoke(
        app, ["submit", "math_chain", "--numbers", *numbers, "--operation", operation, "-q"]
    )
    assert result.exit_code == code, result.output
    return result.stdout.strip()


def test_0_success(runner: CliRunner) -> None:
    chain_id = submitted(runner, "1", "2", "3")
    assert code(runner, "submit", "math_chain", "--numbers", "4", "5") == 0
    for args in (["watch", chain_id], ["result", chain_id], ["result", chain_id, "--wait"],
                 ["status", chain_id], ["list"], ["stats"], ["info"], ["--version"]):  # fmt: skip
        assert code(runner, *args) == 0, args


def test_1_chain_failed_or_cancelled(runner: CliRunner) -> None:
    assert code(runner, "submit", "math_chain", "--numbers", "1", "0", "--operation", "/") == 1
    failed = submitted(runner, "1", "0", operation="mod", code=1)
    for args in (["watch", failed], ["result", failed], ["result", failed, "--wait", "--json"]):
        assert code(runner, *args) == 1, args
    assert json.loads(runner.invoke(app, ["result", failed, "--json"]).stdout)["status"] == "FAILED"


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "math_chain", "--numbers", "1", "x"],
        ["submit", "no_such_chain"],
        ["watch", "--timeout", "soon"],
        ["result", "abc", "--wait", "--timeout", "-1s"],
        ["list", "--status", "DONE"],
        ["no-such-command"],
        ["status"],
    ],
)
def test_2_bad_usage(runner: CliRunner, args: list[str]) -> None:
    assert code(runner, *args) == 2


@pytest.mark.parametrize("command", ["status", "result", "watch", "delete", "cancel"])
def test_3_no_such_chain_or_ambiguous(runner: CliRunner, command: str) -> None:
    extra = ["--yes"] if command == "delete" else []
    for key in ("job-1", "job-2"):
        created = runner.invoke(
            app, ["submit", "math_chain", "--numbers", "1", "2", "--id", key, "-q"]
        )
        assert (created.exit_code, created.stdout) == (0, f"{key}\n"), created.output
    missing = runner.invoke(app, [command, "nope", *extra])
    assert (missing.exit_code, missing.stdout) == (3, "")
    assert missing.stderr == "taskchain: error: no chain matches id 'nope'\n"
    ambiguous = runner.invoke(app, [command, "job", *extra])
    assert (ambiguous.exit_code, ambiguous.stdout) == (3, "")
    assert ambiguous.stderr == (
        "taskchain: error: id prefix 'job' is ambiguous: it matches job-1, job-2\n"
    )
    # Neither touched a chain: both are still there, COMPLETED.
    listed = json.loads(runner.invoke(app, ["list", "--json"]).stdout)
    assert sorted((c["id"], c["status"]) for c in listed) == [
        ("job-1", "COMPLETED"),
        ("job-2", "COMPLETED"),
    ]


@pytest.mark.parametrize(
    ("setting", "args"),
    [
        ({"TASKCHAIN_BROKER_URL": DOWN_BROKER}, ["submit", "math_chain", "--numbers", "1", "2"]),
        ({"TASKCHAIN_DATABASE_URL": DOWN_STORE}, ["status", "abc"]),
        ({"TASKCHAIN_DATABASE_URL": DOWN_STORE}, ["result", "abc", "--wait"]),
        ({"TASKCHAIN_DATABASE_URL": DOWN_STORE}, ["watch", "abc"]),
        ({"TASKCHAIN_DATABASE_URL": DOWN_STORE}, ["watch"]),
        ({"TASKCHAIN_DATABASE_URL": DOWN_STORE}, ["list", "--json"]),
    ],
)
def test_4_unreachable_broker_or_store_fails_within_seconds(
    env: dict[str, str], setting: dict[str, str], args: list[str]
) -> None:
    limit = proc.within(5, env)
    start = time.monotonic()
    done = proc.run(args, {**env, **setting})
    assert done.returncode == 4, done.stderr
    assert time.monotonic() - start < limit
    assert done.stdout == ""
    assert re.fullmatch(
        r"taskchain: error: (broker|store) \S+ is (unreachable|unavailable): .+\n", done.stderr
    )


def test_a_store_blip_while_watching_does_not_change_the_outcome(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_id = submitted(runner, "1", "2")
    real = wait.read
    done = real(chain_id)
    running = ChainView(ChainRecord(**{**done.chain._asdict(), "status": Status.RUNNING}), [])
    blip = StoreUnavailable("sqlite:///store.db", "database is locked")
    script: list[ChainView | Exception] = [running, blip, blip]

    def read(chain: str) -> ChainView:
        item = script.pop(0) if script else real(chain)
        if isinstance(item, Exception):
            raise item
        return item

    monkeypatch.setattr(wait, "read", read)
    result = runner.invoke(app, ["watch", chain_id])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].endswith(": result 3")
    assert script == []


def test_a_store_blip_while_watching_every_chain(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_id = submitted(runner, "1", "2")
    real, done = watch._poll_all, wait.read(chain_id)
    running = ChainView(ChainRecord(**{**done.chain._asdict(), "status": Status.RUNNING}), [])
    blip = StoreUnavailable("sqlite:///store.db", "database is locked")
    script: list[ChainView | Exception] = [running, blip, blip]

    def poll(views: dict[str, ChainView]) -> list[ChainView]:
        item = script.pop(0) if script else None
        if isinstance(item, Exception):
            raise item
        if item is None:
            return real(views)
        views[chain_id] = item
        return [item]

    monkeypatch.setattr(watch, "_poll_all", poll)
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    result = runner.invoke(app, ["watch"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "watched 1 chain(s): 1 COMPLETED"


# ---- 124 and 130 need a chain that does not finish: distributed mode, no worker ---------
# On Redis and on RabbitMQ (`broker_env`): the step waits on the broker, nobody takes it.


def queued(env: dict[str, str]) -> str:
    done = proc.run(["submit", "math_chain", "--numbers", "1", "2", "3", "-q"], env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_124_timeout_passed(broker_env: dict[str, str]) -> None:
    chain_id = queued(broker_env)
    for args, message in (
        (["result", chain_id, "--wait", "--timeout", "1s"], "did not finish within 1s; it goes on"),
        (["watch", chain_id, "--timeout", "1s"], "did not finish within 1s; it goes on"),
        (["watch", "--timeout", "1s"], "1 chain(s) still active after 1s; they go on"),
        (["submit", "math_chain", "--numbers", "1", "2", "--wait", "--timeout", "1.5s"],
         "did not finish within 1.5s; it goes on"),
        (["result", chain_id], "is PENDING: no result yet (use --wait)"),  # as --timeout 0
    ):  # fmt: skip
        limit = proc.within(6, broker_env)
        start = time.monotonic()
        done = proc.run(args, broker_env)
        assert done.returncode == 124, (args, done.stderr)
        assert time.monotonic() - start < limit
        assert done.stderr.splitlines()[-1].endswith(message), done.stderr
    status = json.loads(proc.run(["status", chain_id, "--json"], broker_env).stdout)
    assert status["status"] == "PENDING"  # the timeout did not touch the chain


def interrupt(args: list[str], env: dict[str, str], ready: bytes) -> tuple[int, str]:
    """Start a command, wait until it shows `ready` on stdout, send it SIGINT (Ctrl-C)."""
    child = proc.spawn_taskchain(args, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    assert ready in child.stdout.readline()
    child.send_signal(signal.SIGINT)
    try:
        returncode = child.wait(timeout=15)
    finally:
        child.kill()
    return returncode, child.stderr.read().decode()


def test_130_interrupted_watch_says_the_chain_goes_on(broker_env: dict[str, str]) -> None:
    chain_id = queued(broker_env)
    returncode, stderr = interrupt(["watch", chain_id, "--json"], broker_env, b'"PENDING"')
    assert returncode == 130
    assert stderr == (
        f"taskchain: error: interrupted; chain {chain_id} goes on "
        f"(follow it: taskchain watch {chain_id[:12]})\n"
    )
    status = json.loads(proc.run(["status", chain_id, "--json"], broker_env).stdout)
    assert status["status"] == "PENDING"


@pytest.mark.parametrize("command", [["watch"], ["result", "--wait"], ["submit", "--wait"]])
def test_130_ctrl_c_on_the_live_view(broker_env: dict[str, str], command: list[str]) -> None:
    from tests.support.terminal import Terminal, terminal_env

    chain_id = queued(broker_env)
    if command[0] == "submit":
        args = ["submit", "math_chain", "--numbers", "4", "5", "--wait"]
    else:
        args = [command[0], chain_id, *command[1:]]
    term = Terminal(args, terminal_env(broker_env), stdout_tty=command[0] == "watch")
    term.wait_for("PENDING")
    os.kill(term.proc.pid, signal.SIGINT)
    assert term.finish(timeout=15) == 130
    assert "interrupted; chain " in term.text() and " goes on " in term.text()
    assert "Traceback" not in term.text()


def test_130_embedded_submit_interrupted_cancels_its_chain(
    env: dict[str, str], workspace: Path
) -> None:
    """Embedded: the chain runs inside `submit`, so it cannot go on; it is recorded CANCELLED."""
    probe_env = {**env, "TASKCHAIN_PLUGINS": "tests.support.chains"}
    gates = Gates(workspace)  # never opened: the chain is surely running when Ctrl-C comes
    child, chain_id = running_submit(probe_env, gates.config)
    wait_until(lambda: core.get(chain_id).chain.status == Status.RUNNING, message="running")
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert stderr == (
        f"taskchain: error: interrupted; chain {chain_id} cancelled: in embedded mode it runs "
        "inside the command that submitted it\n"
    )
    status = json.loads(proc.run(["status", chain_id, "--json"], env).stdout)
    assert status["status"] == "CANCELLED"
    assert status["error"] == "interrupted (Ctrl-C) in the command running it"
    assert [s["status"] for s in status["steps"]] == ["CANCELLED", "SKIPPED", "SKIPPED"]
