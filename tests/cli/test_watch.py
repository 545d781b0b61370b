"""`watch`, `submit` and `result --wait` following chains: plain lines and JSON Lines through
pipes, and the live table on a pseudo-terminal, frame by frame, on chains that really run
(embedded: a probe chain run by another `taskchain submit`; distributed: Redis and a worker).

The chains' steps wait for gates the test opens (tests/support/probe.py) once the watcher has
shown the step running: what a watcher sees does not depend on how busy the machine is."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain import core
from taskchain.cli import app
from taskchain.store import Status
from tests.support import proc
from tests.support.probe import Gates
from tests.support.terminal import (
    ROW,
    Terminal,
    drive,
    progressed,
    running,
    running_submit,
    spinners,
    step_states,
    terminal_env,
)
from tests.support.waiting import wait_until

#: Every state a 3-step chain's steps can be seen in, in order, on the way to COMPLETED.
ALLOWED = [
    ("PENDING", "PENDING", "PENDING"),
    running(1),
    ("COMPLETED", "PENDING", "PENDING"),
    running(2),
    ("COMPLETED", "COMPLETED", "PENDING"),
    running(3),
    ("COMPLETED",) * 3,
]


@pytest.fixture
def probe_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "TASKCHAIN_PLUGINS": "tests.support.chains"}


@dataclass
class GatedChain:
    id: str
    gates: Gates
    runner: subprocess.Popen[str]


@pytest.fixture
def gated_chain(probe_env: dict[str, str], workspace: Path) -> Iterator[GatedChain]:
    """A 3-step chain run by an embedded `taskchain submit` process; step n runs until the
    test calls `gates.open(n)`."""
    gates = Gates(workspace)
    runner, chain_id = running_submit(probe_env, gates.config)
    yield GatedChain(chain_id, gates, runner)
    gates.open_all()
    assert runner.wait(timeout=60) == 0, runner.communicate()


def watching(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], proc.Lines]:
    """A `taskchain` command whose stdout is a pipe, read line by line as it comes."""
    child = proc.spawn_taskchain(
        args, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    return child, proc.Lines(child.stdout)


def in_order(states: list[tuple[str, ...]]) -> bool:
    """Every state one of ALLOWED, and never one that comes before the previous one."""
    positions = [ALLOWED.index(state) if state in ALLOWED else -1 for state in states]
    return -1 not in positions and positions == sorted(positions)


def show(frame: str) -> None:
    text = "\n".join(line.rstrip() for line in frame.splitlines())
    print(f"\n--- captured frame ---\n{text}\n--- end of frame ---")


# ---- plain lines and JSON Lines (not a terminal) ----------------------------------------


def test_watch_a_running_chain_prints_one_line_per_step_change(
    gated_chain: GatedChain, probe_env: dict[str, str]
) -> None:
    chain, short = gated_chain, gated_chain.id[:12]
    watcher, lines = watching(["watch", chain.id[:8]], probe_env)
    for n in (1, 2, 3):
        assert lines.next() == f"{short} step {n}/3 probe {n} RUNNING"
        chain.gates.open(n)
        assert lines.next() == f"{short} step {n}/3 probe {n} COMPLETED {n}"
    assert re.fullmatch(rf"{chain.id} probe_chain COMPLETED in \d+\.\d\ds: result 3", lines.next())
    assert lines.rest() == []
    assert watcher.wait(timeout=60) == 0
    assert watcher.stderr is not None and watcher.stderr.read() == ""
    assert not any("\x1b" in line for line in lines.seen)


def test_progressed_needs_the_states_in_order() -> None:
    p, r, c = "PENDING", "RUNNING", "COMPLETED"
    shown = [(r, p), (c, p), (c, r), (c, c)]
    assert progressed(shown, (r, p), (c, r), (c, c))
    assert not progressed(shown, (c, r), (r, p))
    assert not progressed([(c, p), (r, p)], (r, p))  # COMPLETED went back


def test_watch_json_lines_one_object_per_change(
    gated_chain: GatedChain, probe_env: dict[str, str]
) -> None:
    watcher, lines = watching(["watch", gated_chain.id, "--json"], probe_env)
    docs: list[dict] = []
    for n in (1, 2, 3):
        while not docs or tuple(s["status"] for s in docs[-1]["steps"]) != running(n):
            docs.append(json.loads(lines.next()))
        gated_chain.gates.open(n)
    docs += [json.loads(line) for line in lines.rest()]
    assert watcher.wait(timeout=60) == 0
    assert all(d["id"] == gated_chain.id and d["schema_version"] == 1 for d in docs)
    states = [tuple(s["status"] for s in d["steps"]) for d in docs]
    assert in_order(states), states
    assert progressed(states, running(1), running(2), running(3), ("COMPLETED",) * 3), states
    assert (docs[-1]["status"], docs[-1]["result"]) == ("COMPLETED", 3)
    assert [s["result"] for s in docs[-1]["steps"]] == [1, 2, 3]
    assert len({json.dumps(d, sort_keys=True) for d in docs}) == len(docs)  # each is a change


def test_watch_without_id_follows_every_active_chain(
    probe_env: dict[str, str], workspace: Path
) -> None:
    slow, failing = Gates(workspace), Gates(workspace, steps=1)
    failing.steps += [{"fail": "no disk"}, {}]
    runners = [running_submit(probe_env, gates.config) for gates in (slow, failing)]
    ids = [chain_id for _, chain_id in runners]
    wait_until(
        lambda: all(core.get(i).chain.status == Status.RUNNING for i in ids),
        message="both chains running",
    )
    watcher, lines = watching(["watch"], probe_env)
    first = {lines.next() for _ in range(4)}  # each chain as it shows up, and its running step
    assert first == {
        f"{ids[0][:12]} probe_chain RUNNING (3 steps)",
        f"{ids[0][:12]} step 1/3 probe 1 RUNNING",
        f"{ids[1][:12]} probe_chain RUNNING (3 steps)",
        f"{ids[1][:12]} step 1/3 probe 1 RUNNING",
    }
    slow.open_all()
    failing.open_all()
    rest = lines.rest()
    assert watcher.wait(timeout=60) == 1, lines.seen  # one of the chains watched FAILED
    assert [r.wait(timeout=60) for r, _ in runners] == [0, 1]
    assert rest[-1] == "watched 2 chain(s): 1 COMPLETED, 1 FAILED"
    settled = [line for line in rest[:-1] if not line.endswith(" RUNNING")]
    assert [line for line in settled if line.startswith(f"{ids[0][:12]} step")] == [
        f"{ids[0][:12]} step 1/3 probe 1 COMPLETED 1",
        f"{ids[0][:12]} step 2/3 probe 2 COMPLETED 2",
        f"{ids[0][:12]} step 3/3 probe 3 COMPLETED 3",
    ]
    assert [line for line in settled if line.startswith(f"{ids[1][:12]} step")] == [
        f"{ids[1][:12]} step 1/3 probe 1 COMPLETED 1",
        f"{ids[1][:12]} step 2/3 probe 2 FAILED no disk",
    ]
    summaries = [line for line in settled if line.startswith((ids[0], ids[1]))]
    assert len(summaries) == 2
    assert any(
        re.fullmatch(rf"{ids[0]} probe_chain COMPLETED in \S+: result 3", x) for x in summaries
    )
    assert any(
        re.fullmatch(rf"{ids[1]} probe_chain FAILED in \S+: step 2 \(probe 2\) failed: no disk", x)
        for x in summaries
    ), summaries


def test_watch_without_id_and_nothing_active(runner: CliRunner) -> None:
    runner.invoke(app, ["submit", "math_chain", "--numbers", "1", "2", "-q"])
    result = runner.invoke(app, ["watch"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "no active chains\n")
    result = runner.invoke(app, ["watch", "--json"])
    assert (result.exit_code, result.stdout) == (0, "")


def test_watch_finished_chain_plain_and_json(runner: CliRunner) -> None:
    chain_id = runner.invoke(
        app, ["submit", "math_chain", "--numbers", "6", "0", "2", "--operation", "/", "-q"]
    ).stdout.strip()
    result = runner.invoke(app, ["watch", chain_id])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{chain_id[:12]} step 1/2 divide 0 FAILED division by zero (6 // 0)"
    assert lines[1].startswith(f"{chain_id} math_chain FAILED in ")
    assert len(lines) == 2
    result = runner.invoke(app, ["watch", chain_id, "--json"])
    assert result.exit_code == 1
    (doc,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["status"] for s in doc["steps"]] == ["FAILED", "SKIPPED"]


# ---- the live table on a terminal -------------------------------------------------------


def test_live_watch_of_a_chain_run_by_another_process(
    gated_chain: GatedChain, probe_env: dict[str, str]
) -> None:
    term = Terminal(["watch", gated_chain.id], terminal_env(probe_env))
    # While step 1 runs, the view redraws several times a second and the spinner turns.
    drive(
        term,
        gated_chain.gates,
        while_first=lambda: len(term.frames()) >= 8 and len(spinners(term.frames())) >= 3,
    )
    assert term.finish() == 0, term.text()
    frames = term.frames()
    states = step_states(frames)
    assert in_order(states), states
    assert progressed(states, running(1), running(2), running(3), ("COMPLETED",) * 3), states
    assert states[-1] == ("COMPLETED",) * 3
    final = frames[-1].splitlines()
    assert final[0] == f"chain {gated_chain.id}  probe_chain  COMPLETED"
    assert final[1].endswith("  3/3 steps  elapsed " + final[1].split()[-1])
    assert final[-1] == "result: 3"
    assert "\x1b[?1049h" not in term.raw.decode(errors="replace")  # no full-screen takeover


def test_submit_shows_the_live_view_on_stderr_and_only_the_id_on_stdout(
    probe_env: dict[str, str], workspace: Path
) -> None:
    gates = Gates(workspace)
    term = Terminal(
        ["submit", "probe_chain", "--config", gates.config, "-d", "live demo"],
        terminal_env(probe_env),
        stdout_tty=False,
    )
    drive(term, gates)
    assert term.proc.stdout is not None
    chain_id = term.proc.stdout.read().decode().strip()
    assert term.finish() == 0, term.text()
    assert len(chain_id) == 32
    frames = term.frames()
    states = step_states(frames)
    assert in_order(states), states
    assert progressed(states, running(1), running(2), running(3), ("COMPLETED",) * 3), states
    assert frames[0].startswith(f"submitted probe_chain chain {chain_id}\n")
    assert "live demo" in frames[-1] and frames[-1].endswith("result: 3")


def test_quiet_submit_on_a_terminal_stays_silent(probe_env: dict[str, str]) -> None:
    term = Terminal(
        ["submit", "probe_chain", "--config", '{"steps": [{"sleep": 0.3}]}', "-q"],
        terminal_env(probe_env),
        stdout_tty=False,
    )
    assert term.finish() == 0
    assert term.raw == b""


def test_result_wait_shows_the_live_view_on_stderr(
    gated_chain: GatedChain, probe_env: dict[str, str]
) -> None:
    term = Terminal(["result", gated_chain.id, "--wait"], terminal_env(probe_env), stdout_tty=False)
    drive(term, gated_chain.gates)
    assert term.proc.stdout is not None
    stdout = term.proc.stdout.read().decode()
    assert term.finish() == 0
    assert stdout == "3\n"
    states = step_states(term.frames())
    assert in_order(states) and states[0] == running(1), states
    assert states[-1] == ("COMPLETED",) * 3


@pytest.mark.parametrize("setting", [{"CI": "true"}, {"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_no_live_redraw_when_ci_no_color_or_dumb(
    gated_chain: GatedChain, probe_env: dict[str, str], setting: dict[str, str]
) -> None:
    term = Terminal(["watch", gated_chain.id], {**terminal_env(probe_env), **setting})
    short = gated_chain.id[:12]
    term.wait_for(f"{short} step 1/3 probe 1 RUNNING")
    gated_chain.gates.open_all()
    assert term.finish() == 0
    assert b"\x1b" not in term.raw
    lines = term.raw.decode().splitlines()
    assert lines[0] == f"{short} step 1/3 probe 1 RUNNING"
    assert [line for line in lines[:-1] if not line.endswith(" RUNNING")] == [
        f"{short} step {n}/3 probe {n} COMPLETED {n}" for n in (1, 2, 3)
    ]
    assert lines[-1].startswith(f"{gated_chain.id} probe_chain COMPLETED in ")


def test_live_watch_of_every_active_chain(
    probe_env: dict[str, str], gated_chain: GatedChain
) -> None:
    term = Terminal(["watch"], terminal_env(probe_env))
    term.wait_until(lambda: "watching 1 chain(s): 1 RUNNING" in term.text(), "the chain running")
    gated_chain.gates.open_all()
    assert term.finish() == 0, term.text()
    final = term.frames()[-1].splitlines()
    assert final[0].startswith("watching 1 chain(s): 1 COMPLETED  elapsed ")
    assert final[2].split() == [
        "id",
        "type",
        "status",
        "progress",
        "step",
        "time",
        "result",
        "/",
        "error",
    ]
    assert final[4].startswith(f"{gated_chain.id[:12]}   probe_chain   COMPLETED   ━━━━━━━━━━ 3/3 ")
    assert final[4].rstrip().endswith("   3")
    assert final[-1] == "watched 1 chain(s): 1 COMPLETED"


@pytest.mark.redis
def test_live_watch_in_distributed_mode_frame_by_frame(
    redis_env: dict[str, str], workspace: Path, tmp_path: Path
) -> None:
    """The issue's "done means": a person sees the table update step by step."""
    env = {**redis_env, "TASKCHAIN_PLUGINS": "tests.support.chains"}
    gates = Gates(workspace)
    queued = proc.run(
        ["submit", "probe_chain", "--config", gates.config, "-d", "nightly", "-q"], env
    )
    assert queued.returncode == 0, queued.stderr
    chain_id = queued.stdout.strip()
    term = Terminal(["watch", chain_id], terminal_env(env))
    term.wait_for("PENDING")  # no worker yet: the chain waits in its queue
    with proc.worker(env, tmp_path / "worker.log", concurrency=1):
        drive(term, gates)
        assert term.finish() == 0, term.text()
    frames = term.frames()
    states = step_states(frames)
    assert states[0] == ("PENDING", "PENDING", "PENDING")
    assert in_order(states), states
    assert progressed(
        states,
        running(1),
        running(2),
        running(3),
        ("COMPLETED", "COMPLETED", "COMPLETED"),
    ), states
    assert states[-1] == ("COMPLETED",) * 3
    assert frames[0].splitlines()[0] == f"chain {chain_id}  probe_chain  PENDING"
    middle = next(f for f in frames if ROW.findall(f)[1][1] == "RUNNING")
    assert "1/3 steps" in middle
    show(frames[0])
    show(middle)
    show(frames[-1])
