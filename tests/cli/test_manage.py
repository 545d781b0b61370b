"""cancel and retry through the CLI, embedded mode."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from taskchain.cli import app
from taskchain.engine import control
from taskchain.engine.submit import prepare
from taskchain.store import queries, session


def recorded(config: dict) -> str:
    """A chain recorded but never sent (as if its worker had not picked it up yet)."""
    chain, steps = prepare("math_chain", config)
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    return chain.id


def attempt(chain_id: str) -> int:
    with session() as s:
        return queries.get_chain(session=s, chain_id=chain_id).chain.attempt


def status(runner: CliRunner, chain_id: str) -> dict:
    return json.loads(runner.invoke(app, ["status", chain_id, "--json"]).stdout)


@pytest.mark.usefixtures("store_url")
def test_cancel_then_retry_runs_the_chain(runner: CliRunner) -> None:
    chain_id = recorded({"numbers": [1, 2, 3]})
    result = runner.invoke(app, ["cancel", chain_id[:8]])
    assert (result.exit_code, result.stderr) == (0, f"cancelled {chain_id}\n")
    doc = status(runner, chain_id)
    assert (doc["status"], doc["error"]) == ("CANCELLED", "cancelled by user")
    assert [s["status"] for s in doc["steps"]] == ["SKIPPED", "SKIPPED"]
    again = runner.invoke(app, ["cancel", chain_id])
    assert again.exit_code == 0 and "already CANCELLED" in again.stderr
    assert runner.invoke(app, ["watch", chain_id]).exit_code == 1

    result = runner.invoke(app, ["retry", chain_id, "-q"])
    assert result.exit_code == 0, result.output
    doc = status(runner, chain_id)
    assert (doc["status"], doc["result"], doc["error"]) == ("COMPLETED", 6, None)
    assert attempt(chain_id) == 2


@pytest.mark.usefixtures("store_url")
def test_retry_reuses_completed_steps(runner: CliRunner) -> None:
    failed = runner.invoke(
        app, ["submit", "math_chain", "--numbers", "6", "3", "0", "--operation", "divide", "-q"]
    )
    chain_id = failed.stdout.strip()
    assert failed.exit_code == 1
    result = runner.invoke(app, ["retry", chain_id])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"retrying chain {chain_id} from step 2"
    doc = status(runner, chain_id)
    first, second = doc["steps"]
    assert (first["status"], first["result"], first["attempts"]) == ("COMPLETED", 2, 1)
    assert (second["status"], second["attempts"]) == ("FAILED", 2)
    assert attempt(chain_id) == 2


@pytest.mark.usefixtures("store_url")
def test_retry_refuses_a_completed_chain(runner: CliRunner) -> None:
    chain_id = runner.invoke(
        app, ["submit", "math_chain", "--numbers", "1", "2", "-q"]
    ).stdout.strip()
    result = runner.invoke(app, ["retry", chain_id])
    assert result.exit_code == 2
    assert result.stderr == (
        f"taskchain: error: chain {chain_id} is COMPLETED: only FAILED, CANCELLED or orphaned "
        "chains can be retried\n"
    )


@pytest.mark.usefixtures("store_url")
def test_delete_of_a_running_chain_cancels_it_first(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_id = recorded({"numbers": [1, 2, 3]})
    with session(write=True) as s:
        from taskchain.store import transitions
        from taskchain.store.models import utcnow

        transitions.claim_step(
            session=s, chain_id=chain_id, index=0, token="t", lease_until=utcnow()
        )
    with session() as s:
        steps = queries.get_chain(session=s, chain_id=chain_id).steps
    unfinished = [st.task_id for st in steps]  # step 1 RUNNING, step 2 PENDING
    seen: list[tuple[list[str], str, str | None, list[str]]] = []

    def revoke(task_ids: list[str], *, terminate: bool = False) -> None:
        """Where the cancel tells the workers: what the store holds at that moment."""
        with session() as s:
            view = queries.get_chain(session=s, chain_id=chain_id)
        seen.append((list(task_ids), view.chain.status.value, view.chain.error,
                     [st.status.value for st in view.steps]))  # fmt: skip

    monkeypatch.setattr(control, "revoke", revoke)
    result = runner.invoke(app, ["delete", chain_id, "--yes"])
    assert (result.exit_code, result.stderr) == (0, f"deleted {chain_id}\n")
    # Cancelled (and its steps revoked) before the records went: a worker holding step 1
    # sees CANCELLED, not a chain that vanished under it.
    assert seen == [(unfinished, "CANCELLED", "cancelled by delete", ["CANCELLED", "SKIPPED"])]
    assert json.loads(runner.invoke(app, ["list", "--json"]).stdout) == []


@pytest.mark.usefixtures("store_url")
def test_delete_of_a_finished_chain_cancels_nothing(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_id = runner.invoke(
        app, ["submit", "math_chain", "--numbers", "1", "2", "-q"]
    ).stdout.strip()
    calls: list[object] = []
    monkeypatch.setattr(control, "revoke", lambda *a, **k: calls.append(a))
    assert runner.invoke(app, ["delete", chain_id, "--yes"]).exit_code == 0
    assert calls == []


@pytest.mark.usefixtures("store_url")
def test_delete_removes_the_chains_files_in_the_workspace(runner: CliRunner, workspace) -> None:  # type: ignore[no-untyped-def]
    (workspace / "t.csv").write_text("a,b\n1,2\n3,4\n")
    chain_id = runner.invoke(
        app, ["submit", "data_chain", "--input", "t.csv", "--steps", "clean", "-q"]
    ).stdout.strip()
    folder = workspace / ".taskchain" / chain_id
    assert folder.is_dir() and any(folder.iterdir())
    assert runner.invoke(app, ["delete", chain_id, "--yes"]).exit_code == 0
    assert not folder.exists()
    assert (workspace / "t.csv").exists()


# ---- delete's question ------------------------------------------------------------------


@pytest.fixture
def at_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """stdin is a terminal, as when a person types `taskchain delete ID`."""
    from taskchain.cli import manage

    monkeypatch.setattr(manage, "_interactive", lambda: True)


def question(chain_id: str) -> str:
    return f"Delete 1 chain(s): {chain_id[:12]}? [y/N]: "


@pytest.mark.parametrize("answer", ["n\n", "\n", "no\n"])
def test_declining_delete_deletes_nothing_and_exits_0(
    runner: CliRunner, at_a_terminal: None, answer: str
) -> None:
    chain_id = recorded({"numbers": [1, 2]})
    result = runner.invoke(app, ["delete", chain_id], input=answer)
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == question(chain_id) + "nothing deleted\n"
    assert status(runner, chain_id)["id"] == chain_id


def test_agreeing_to_delete_deletes(runner: CliRunner, at_a_terminal: None) -> None:
    chain_id = recorded({"numbers": [1, 2]})
    result = runner.invoke(app, ["delete", chain_id], input="y\n")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == question(chain_id) + f"deleted {chain_id}\n"
    assert runner.invoke(app, ["status", chain_id]).exit_code == 3


def test_end_of_input_at_the_question_is_an_interruption(
    runner: CliRunner, at_a_terminal: None
) -> None:
    chain_id = recorded({"numbers": [1, 2]})
    result = runner.invoke(app, ["delete", chain_id], input="")
    assert (result.exit_code, result.stdout) == (130, "")
    assert (
        result.stderr == question(chain_id) + "\ntaskchain: error: interrupted; nothing deleted\n"
    )
    assert "Aborted" not in result.output
    assert status(runner, chain_id)["id"] == chain_id


def test_declining_at_a_real_terminal(env: dict[str, str]) -> None:
    from tests.support import proc
    from tests.support.terminal import Terminal, terminal_env

    made = proc.run(["submit", "math_chain", "--numbers", "1", "2", "-q"], env)
    assert made.returncode == 0, made.stderr
    chain_id = made.stdout.strip()
    term = Terminal(["delete", chain_id[:8]], terminal_env(env))
    term.wait_for("[y/N]: ")
    os.write(term.master, b"n\r")
    assert term.finish() == 0
    assert term.text().replace("\r\n", "\n") == question(chain_id) + "n\nnothing deleted\n"
    assert proc.run(["status", chain_id, "--json"], env).returncode == 0
