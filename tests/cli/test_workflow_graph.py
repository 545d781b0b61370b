"""`watch WORKFLOW` on a terminal draws the jobs as a graph: stages left to right, a card per
job with its status, progress in steps and time."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from taskchain.cli.workflow_graph import graph, stages
from taskchain.store import ChainRecord, Status
from taskchain.store.workflow_model import WorkflowRecord
from taskchain.store.workflows import WorkflowView
from tests.support import proc
from tests.support.probe import Gates
from tests.support.terminal import Terminal, terminal_env

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NEEDS = {"clean": [], "summary": ["clean"], "totals": ["clean"], "archive": ["summary", "totals"],
         "late": ["clean", "archive"]}  # fmt: skip


def job(
    name: str, status: Status, steps: int, ago: float | None = None, **kw: object
) -> ChainRecord:
    started = NOW - timedelta(seconds=ago) if ago is not None else None
    return ChainRecord(id=f"{name:x<32}", type="math_chain", job=name, status=status,
                       step_count=steps, started_at=started, **kw)  # fmt: skip


def view() -> WorkflowView:
    spec = {"jobs": {name: {"needs": needs} for name, needs in NEEDS.items()}}
    row = WorkflowRecord(id="f" * 32, name="nightly", status=Status.RUNNING, spec=spec,
                         started_at=NOW - timedelta(seconds=5))  # fmt: skip
    jobs = [
        job("clean", Status.COMPLETED, 2, 5, finished_at=NOW - timedelta(seconds=3), result=6),
        job("summary", Status.RUNNING, 3, 2), job("totals", Status.RUNNING, 2, 1),
        job("archive", Status.PENDING, 0), job("late", Status.PENDING, 0),
    ]  # fmt: skip
    return WorkflowView(row, jobs, {jobs[0].id: 2, jobs[1].id: 1})


def test_a_job_taken_by_a_worker_after_it_was_seen_queued_is_drawn_again() -> None:
    """The watch redraws on a change of what it shows: a job seen RUNNING but `queued` (the
    fan-in started it, no worker has yet) changes when a worker takes it, with no other
    change. Under load a CI run saw it stay `queued` for a minute."""
    from taskchain.cli.workflow_view import _state

    queued = view()
    queued.jobs[3].status, queued.jobs[3].step_count = Status.RUNNING, 2
    taken = view()
    taken.jobs[3].status, taken.jobs[3].step_count = Status.RUNNING, 2
    taken.jobs[3].started_at = NOW
    assert _state(queued) != _state(taken)
    assert _state(taken) == _state(taken)


def drawn(frame: int | None) -> list[str]:
    console = Console(width=120, record=True, force_terminal=False, color_system=None)
    console.print(graph(view(), now=NOW, frame=frame))
    return console.export_text().splitlines()


def column_of(lines: list[str], text: str) -> int:
    """Where `text` starts on the first line that has it."""
    return next(line.index(text) for line in lines if text in line)


def test_a_job_stands_one_stage_right_of_its_deepest_need() -> None:
    assert [[c.job for c in stage] for stage in stages(view())] == [
        ["clean"], ["summary", "totals"], ["archive"], ["late"],
    ]  # fmt: skip


def test_each_card_shows_status_progress_time_and_far_needs() -> None:
    lines = drawn(frame=3)
    assert lines[0] == "workflow ffffffffffff nightly ⠸ RUNNING  5.00s"
    text = "\n".join(lines)
    for stage in range(1, 5):
        assert f"stage {stage}" in text
    # Left to right by stage; the two jobs that can run together stand in one stage.
    x = {name: column_of(lines, f"{name} ") for name in NEEDS}
    assert x["clean"] < x["summary"] == x["totals"] < x["archive"] < x["late"]
    assert "clean COMPLETED 2/2 · 2.00s · = 6" in text
    assert "summary ⠸ RUNNING 1/3 · 2.00s" in text
    assert "totals ⠸ RUNNING 0/2 · 1.00s" in text
    # Needs are drawn only when they are not all in the stage just before.
    assert "← clean, archive" in text
    assert text.count("←") == 1


def test_the_final_frame_has_no_spinner() -> None:
    assert not re.search("[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]", "\n".join(drawn(frame=None)))


def test_a_queued_job_has_no_spinner_and_a_tall_stage_is_cut_to_the_terminal() -> None:
    spec = {"jobs": {f"sq-{n:02d}": {} for n in range(20)}}
    row = WorkflowRecord(id="e" * 32, name="fanout", status=Status.RUNNING, spec=spec)
    jobs = [job(f"sq-{n:02d}", Status.COMPLETED, 1, 2, result=n) for n in range(8)]
    jobs += [job(f"sq-{n:02d}", Status.RUNNING, 1, 1) for n in range(8, 10)]
    jobs += [job(f"sq-{n:02d}", Status.PENDING, 1) for n in range(10, 20)]  # queued
    console = Console(width=120, record=True, force_terminal=False, color_system=None)
    console.print(graph(WorkflowView(row, jobs), now=NOW, frame=0, rows=12))
    text = console.export_text()
    assert len(text.splitlines()) <= 12
    assert "sq-08 ⠋ RUNNING 0/1 · 1.00s" in text and "sq-09 ⠋ RUNNING" in text  # running first
    assert "+ 14 more: 6 RUNNING, 8 COMPLETED" in text  # 7 lines of room: 6 jobs, a count
    console = Console(width=120, record=True, force_terminal=False, color_system=None)
    console.print(graph(WorkflowView(row, jobs), now=NOW, frame=0))
    whole = console.export_text()
    assert "sq-19 RUNNING 0/1 · queued" in whole and "more" not in whole


def test_watch_draws_a_running_workflow_as_a_graph(env: dict[str, str], tmp_path: Path) -> None:
    """A real embedded `run` of gated probe jobs, watched from a terminal: the graph shows each
    job running in its stage, then done, and `watch` exits 0."""
    env = {**env, "TASKCHAIN_PLUGINS": "tests.support.chains"}
    workspace = Path(env["TASKCHAIN_WORKSPACE"])
    first, second = Gates(workspace, steps=1), Gates(workspace, steps=1)
    spec = {"name": "gated", "jobs": {
        "first": {"type": "probe_chain", "config": json.loads(first.config)},
        "second": {"type": "probe_chain", "needs": ["first"],
                   "config": json.loads(second.config)},
    }}  # fmt: skip
    wf_file = tmp_path / "gated.yaml"
    wf_file.write_text(json.dumps(spec))  # JSON is YAML
    runner = proc.spawn_taskchain(
        ["run", str(wf_file), "--id", "gated-1", "-q"], env, stdout=subprocess.PIPE, text=True
    )
    assert runner.stdout is not None and runner.stdout.readline().strip() == "gated-1"
    term = Terminal(["watch", "gated-1"], terminal_env(env))
    try:
        term.wait_until(lambda: re.search(r"first [⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] RUNNING", term.text()),
                        "first RUNNING in the graph")  # fmt: skip
        assert "stage 1" in term.text() and "stage 2" in term.text()
        first.open(1)
        term.wait_until(lambda: re.search(r"second [⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] RUNNING", term.text()),
                        "second RUNNING in the graph")  # fmt: skip
        second.open(1)
        assert term.finish() == 0
    finally:
        first.open_all()
        second.open_all()
    assert runner.wait(timeout=60) == 0
    last = term.frames()[-1]
    assert "first COMPLETED" in last and "second COMPLETED" in last
    assert last.count("1/1 · ") == 2
