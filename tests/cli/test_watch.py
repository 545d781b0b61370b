"""`watch`, `submit` and `result --wait` following chains: plain lines and JSON Lines through
pipes, and the live table on a pseudo-terminal, frame by frame, on chains that really run
(embedded: a slow chain run by another `taskchain submit`; distributed: Redis and a worker)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskchain.cli import app
from tests.support import proc
from tests.support.terminal import (
    ROW,
    SLOW,
    Terminal,
    progressed,
    running_submit,
    spinners,
    step_states,
    terminal_env,
)


@pytest.fixture
def probe_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "TASKCHAIN_PLUGINS": "tests.support.chains"}


@pytest.fixture
def slow_chain(probe_env: dict[str, str]) -> Iterator[str]:
    """A 3-step chain (1 s a step) being run by an embedded `taskchain submit` process."""
    runner, chain_id = running_submit(probe_env, SLOW)
    yield chain_id
    assert runner.wait(timeout=30) == 0, runner.communicate()


def show(frame: str) -> None:
    text = "\n".join(line.rstrip() for line in frame.splitlines())
    print(f"\n--- captured frame ---\n{text}\n--- end of frame ---")


# ---- plain lines and JSON Lines (not a terminal) ----------------------------------------


def test_watch_a_running_chain_prints_one_line_per_step_change(
    slow_chain: str, probe_env: dict[str, str]
) -> None:
    done = proc.run(["watch", slow_chain[:8]], probe_env)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    short = slow_chain[:12]
    steps = [line for line in lines[:-1] if " RUNNING" not in line]
    assert steps == [
        f"{short} step 1/3 probe 1 COMPLETED 1",
        f"{short} step 2/3 probe 2 COMPLETED 2",
        f"{short} step 3/3 probe 3 COMPLETED 3",
    ]
    # The watch starts while step 1 runs: steps 2 and 3 are seen starting.
    assert f"{short} step 3/3 probe 3 RUNNING" in lines
    assert re.fullmatch(rf"{slow_chain} probe_chain COMPLETED in \d\.\d\ds: result 3", lines[-1])


def test_progressed_needs_the_states_in_order() -> None:
    p, r, c = "PENDING", "RUNNING", "COMPLETED"
    shown = [(r, p), (c, p), (c, r), (c, c)]
    assert progressed(shown, (r, p), (c, r), (c, c))
    assert not progressed(shown, (c, r), (r, p))
    assert not progressed([(c, p), (r, p)], (r, p))  # COMPLETED went back


def test_watch_json_lines_one_object_per_change(slow_chain: str, probe_env: dict[str, str]) -> None:
    done = proc.run(["watch", slow_chain, "--json"], probe_env)
    assert done.returncode == 0, done.stderr
    docs = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(docs) >= 4  # at least: step 2 running, 2 done (3 running), 3 done, chain done
    assert all(d["id"] == slow_chain and d["schema_version"] == 1 for d in docs)
    done_counts = [sum(s["status"] == "COMPLETED" for s in d["steps"]) for d in docs]
    assert done_counts == sorted(done_counts) and done_counts[-1] == 3
    assert (docs[-1]["status"], docs[-1]["result"]) == ("COMPLETED", 3)
    assert len({json.dumps(d, sort_keys=True) for d in docs}) == len(docs)  # each is a change


def test_watch_without_id_follows_every_active_chain(probe_env: dict[str, str]) -> None:
    failing = json.dumps({"steps": [{"sleep": 2.0}, {"fail": "no disk"}, {}]})
    runners = [running_submit(probe_env, config) for config in (SLOW, failing)]
    ids = [chain_id for _, chain_id in runners]
    done = proc.run(["watch"], probe_env)
    assert [r.wait(timeout=30) for r, _ in runners] == [0, 1], [r.communicate() for r, _ in runners]
    assert done.returncode == 1, done.stdout + done.stderr  # one of the chains watched FAILED
    lines = done.stdout.splitlines()
    assert lines[-1] == "watched 2 chain(s): 1 COMPLETED, 1 FAILED"
    assert f"{ids[0][:12]} probe_chain RUNNING (3 steps)" in lines
    assert f"{ids[1][:12]} step 2/3 probe 2 FAILED no disk" in lines
    assert f"{ids[1]} probe_chain FAILED in " in "\n".join(lines)
    assert re.search(rf"^{ids[0]} probe_chain COMPLETED in .*: result 3$", done.stdout, re.M)


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
    slow_chain: str, probe_env: dict[str, str]
) -> None:
    term = Terminal(["watch", slow_chain], terminal_env(probe_env))
    assert term.finish() == 0, term.text()
    frames = term.frames()
    assert len(frames) >= 8  # redrawn several times a second
    states = step_states(frames)
    assert progressed(
        states,
        ("COMPLETED", "RUNNING", "PENDING"),
        ("COMPLETED", "COMPLETED", "RUNNING"),
        ("COMPLETED", "COMPLETED", "COMPLETED"),
    ), states
    assert states[-1] == ("COMPLETED",) * 3
    assert len(spinners(frames)) >= 3  # the spinner turns
    final = frames[-1].splitlines()
    assert final[0] == f"chain {slow_chain}  probe_chain  COMPLETED"
    assert final[1].endswith("  3/3 steps  elapsed " + final[1].split()[-1])
    assert final[-1] == "result: 3"
    assert "\x1b[?1049h" not in term.raw.decode(errors="replace")  # no full-screen takeover


def test_submit_shows_the_live_view_on_stderr_and_only_the_id_on_stdout(
    probe_env: dict[str, str],
) -> None:
    term = Terminal(
        ["submit", "probe_chain", "--config", SLOW, "-d", "live demo"],
        terminal_env(probe_env),
        stdout_tty=False,
    )
    assert term.proc.stdout is not None
    chain_id = term.proc.stdout.read().decode().strip()
    assert term.finish() == 0, term.text()
    assert len(chain_id) == 32
    frames = term.frames()
    states = step_states(frames)
    assert progressed(states, ("COMPLETED", "RUNNING", "PENDING"), ("COMPLETED",) * 3), states
    assert states[-1] == ("COMPLETED",) * 3
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
    slow_chain: str, probe_env: dict[str, str]
) -> None:
    term = Terminal(["result", slow_chain, "--wait"], terminal_env(probe_env), stdout_tty=False)
    assert term.proc.stdout is not None
    stdout = term.proc.stdout.read().decode()
    assert term.finish() == 0
    assert stdout == "3\n"
    assert step_states(term.frames())[-1] == ("COMPLETED",) * 3


@pytest.mark.parametrize("setting", [{"CI": "true"}, {"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_no_live_redraw_when_ci_no_color_or_dumb(
    slow_chain: str, probe_env: dict[str, str], setting: dict[str, str]
) -> None:
    term = Terminal(["watch", slow_chain], {**terminal_env(probe_env), **setting})
    assert term.finish() == 0
    assert b"\x1b" not in term.raw
    lines = term.raw.decode().splitlines()
    assert lines[-1].startswith(f"{slow_chain} probe_chain COMPLETED in ")
    assert f"{slow_chain[:12]} step 3/3 probe 3 COMPLETED 3" in lines


def test_live_watch_of_every_active_chain(probe_env: dict[str, str], slow_chain: str) -> None:
    term = Terminal(["watch"], terminal_env(probe_env))
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
    assert final[4].startswith(f"{slow_chain[:12]}   probe_chain   COMPLETED   ━━━━━━━━━━ 3/3 ")
    assert final[4].rstrip().endswith("   3")
    assert final[-1] == "watched 1 chain(s): 1 COMPLETED"


@pytest.mark.redis
def test_live_watch_in_distributed_mode_frame_by_frame(
    redis_env: dict[str, str], tmp_path: Path
) -> None:
    """The issue's "done means": a person sees the table update step by step."""
    env = {**redis_env, "TASKCHAIN_PLUGINS": "tests.support.chains"}
    queued = proc.run(["submit", "probe_chain", "--config", SLOW, "-d", "nightly", "-q"], env)
    chain_id = queued.stdout.strip()
    term = Terminal(["watch", chain_id], terminal_env(env))
    term.wait_for("PENDING")  # no worker yet: the chain waits in its queue
    with proc.worker(env, tmp_path / "worker.log", concurrency=1):
        assert term.finish() == 0, term.text()
    frames = term.frames()
    states = step_states(frames)
    assert states[0] == ("PENDING", "PENDING", "PENDING")
    assert progressed(
        states,
        ("RUNNING", "PENDING", "PENDING"),
        ("COMPLETED", "RUNNING", "PENDING"),
        ("COMPLETED", "COMPLETED", "RUNNING"),
        ("COMPLETED", "COMPLETED", "COMPLETED"),
    ), states
    assert states[-1] == ("COMPLETED",) * 3
    assert frames[0].splitlines()[0] == f"chain {chain_id}  probe_chain  PENDING"
    middle = next(f for f in frames if ROW.findall(f)[1][1] == "RUNNING")
    assert "1/3 steps" in middle
    show(frames[0])
    show(middle)
    show(frames[-1])
