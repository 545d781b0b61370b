"""The workflow graph: needs, cycles, topological order, the fan-in rule and skips."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskchain.errors import InvalidInput
from taskchain.workflows.graph import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    Advance,
    Graph,
    GraphError,
    workflow_status,
)

NIGHTLY = {"clean": [], "summary": ["clean"], "totals": ["clean"], "archive": ["summary", "totals"]}


def test_order_follows_needs_and_then_the_file():
    graph = Graph(
        {"archive": ["summary", "totals"], "totals": ["clean"], "summary": ["clean"], "clean": []}
    )
    assert graph.order == ("clean", "totals", "summary", "archive")
    assert graph.roots() == ("clean",)
    assert graph.jobs == ("archive", "totals", "summary", "clean")


def test_upstream_and_downstream_are_transitive():
    graph = Graph(NIGHTLY)
    assert graph.downstream("clean") == {"summary", "totals", "archive"}
    assert graph.downstream("summary") == {"archive"}
    assert graph.downstream("archive") == set()
    assert graph.upstream("archive") == {"clean", "summary", "totals"}
    assert graph.dependents["clean"] == ("summary", "totals")


def test_a_need_listed_twice_counts_once():
    assert Graph({"a": [], "b": ["a", "a"]}).needs["b"] == ("a",)


def test_unknown_need_names_the_job_and_the_field():
    with pytest.raises(GraphError) as caught:
        Graph({"a": [], "b": ["a", "c"]})
    assert caught.value.job == "b"
    assert caught.value.message == "needs: no job is named 'c' (jobs: a, b)"
    assert isinstance(caught.value, InvalidInput) and caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("needs", "message"),
    [
        ({"a": ["b"], "b": ["a"]}, "jobs a -> b -> a form a cycle"),
        ({"a": ["a"]}, "jobs a -> a form a cycle"),
        ({"x": [], "a": ["x", "c"], "b": ["a"], "c": ["b"]}, "jobs a -> c -> b -> a form a cycle"),
    ],
)
def test_cycles_are_named(needs, message):
    with pytest.raises(GraphError) as caught:
        Graph(needs)
    assert caught.value.message == message
    assert caught.value.job is None


def test_ready_is_the_fan_in_rule():
    graph = Graph(NIGHTLY)
    assert graph.ready(completed=set(), started=set()) == ["clean"]
    assert graph.ready(completed={"clean"}, started={"clean"}) == ["summary", "totals"]
    assert graph.ready(completed={"clean", "summary"}, started={"clean", "summary", "totals"}) == []
    done = {"clean", "summary", "totals"}
    assert graph.ready(completed=done, started=done) == ["archive"]


def test_advance_starts_jobs_whose_needs_all_completed():
    graph = Graph(NIGHTLY)
    assert graph.advance({}) == Advance(start=("clean",))
    assert graph.advance({"clean": RUNNING}) == Advance()
    states = {"clean": COMPLETED, "summary": COMPLETED, "totals": RUNNING, "archive": PENDING}
    assert graph.advance(states) == Advance()  # fan-in: archive waits for totals
    states["totals"] = COMPLETED
    assert graph.advance(states) == Advance(start=("archive",))


def test_a_failure_skips_its_dependents_transitively_with_the_reason():
    graph = Graph(NIGHTLY)
    states = {"clean": FAILED}
    assert graph.advance(states) == Advance(
        skip={
            "summary": "job 'clean' failed",
            "totals": "job 'clean' failed",
            "archive": "job 'clean' failed (needed through 'summary')",
        }
    )


def test_independent_branches_go_on_after_a_failure():
    graph = Graph(NIGHTLY)
    states = {"clean": COMPLETED, "summary": FAILED, "totals": PENDING}
    assert graph.advance(states) == Advance(
        start=("totals",), skip={"archive": "job 'summary' failed"}
    )


def test_a_skip_recorded_earlier_still_names_the_root_cause():
    graph = Graph({"a": [], "b": ["a"], "c": ["b"], "d": ["c"]})
    states = {"a": CANCELLED, "b": SKIPPED, "c": SKIPPED, "d": PENDING}
    assert graph.advance(states).skip == {"d": "job 'a' was cancelled (needed through 'c')"}


def test_advance_is_idempotent():
    graph = Graph(NIGHTLY)
    states = {"clean": COMPLETED}
    first = graph.advance(states)
    assert first == graph.advance(states) == Advance(start=("summary", "totals"))
    for job in first.start:
        states[job] = RUNNING
    assert graph.advance(states) == Advance()


def test_to_retry_takes_failed_cancelled_and_skipped_jobs():
    graph = Graph(NIGHTLY)
    states = {"clean": COMPLETED, "summary": FAILED, "totals": CANCELLED, "archive": SKIPPED}
    assert graph.to_retry(states) == {"summary", "totals", "archive"}
    assert graph.to_retry({j: COMPLETED for j in NIGHTLY}) == set()


@pytest.mark.parametrize(
    ("states", "status"),
    [
        ([PENDING, PENDING], PENDING),
        ([COMPLETED, PENDING], RUNNING),
        ([RUNNING, FAILED], RUNNING),
        ([COMPLETED, COMPLETED], COMPLETED),
        ([COMPLETED, FAILED, SKIPPED], FAILED),
        ([CANCELLED, FAILED, SKIPPED], FAILED),
        ([COMPLETED, CANCELLED, SKIPPED], CANCELLED),
    ],
)
def test_workflow_status(states, status):
    assert workflow_status(states) == status


# Random DAGs: job i may need only jobs made before it (a hidden order), and the file lists
# the jobs shuffled, so that file order says nothing about the graph.
@st.composite
def dags(draw, max_jobs=14):
    n = draw(st.integers(min_value=1, max_value=max_jobs))
    names = [f"j{i}" for i in range(n)]
    needs = {
        name: draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else []
        for i, name in enumerate(names)
    }
    shuffled = draw(st.permutations(names))
    return {name: needs[name] for name in shuffled}


def _reachable(needs, start):
    seen, todo = set(), list(needs[start])
    while todo:
        job = todo.pop()
        if job not in seen:
            seen.add(job)
            todo += needs[job]
    return seen


@settings(max_examples=100, deadline=None)
@given(dags())
def test_topological_order_respects_needs(needs):
    graph = Graph(needs)
    assert sorted(graph.order) == sorted(needs)
    position = {job: i for i, job in enumerate(graph.order)}
    for job, wanted in needs.items():
        assert all(position[n] < position[job] for n in wanted)


@settings(max_examples=100, deadline=None)
@given(dags())
def test_skip_set_is_every_transitive_dependent(needs):
    graph = Graph(needs)
    for job in needs:
        expected = {other for other in needs if job in _reachable(needs, other)}
        assert graph.downstream(job) == expected
        assert graph.upstream(job) == _reachable(needs, job)
        # One failure with everything else pending skips exactly that set.
        states = {j: (FAILED if j == job else PENDING) for j in needs}
        assert set(graph.advance(states).skip) == expected


@settings(max_examples=100, deadline=None)
@given(dags(), st.data())
def test_a_back_edge_always_makes_a_detected_cycle(needs, data):
    pairs = [(job, up) for job in needs for up in _reachable(needs, job)] + [
        (job, job) for job in needs
    ]
    job, up = data.draw(st.sampled_from(pairs))
    needs = {**needs, up: [*needs[up], job]}  # up now needs job, which needs up
    with pytest.raises(GraphError) as caught:
        Graph(needs)
    message = caught.value.message
    assert message.startswith("jobs ") and message.endswith(" form a cycle")
    cycle = message.removeprefix("jobs ").removesuffix(" form a cycle").split(" -> ")
    assert cycle[0] == cycle[-1] and len(cycle) >= 2
    for a, b in pairwise(cycle):
        assert b in needs[a], f"{a} does not need {b}"


@settings(max_examples=100, deadline=None)
@given(dags(), st.data())
def test_running_a_workflow_to_the_end(needs, data):
    """Start what `advance` says, finish jobs one at a time in a random order, some failing:
    every job ends, a job starts only after all its needs completed, and a job is skipped
    exactly when a job upstream of it failed."""
    graph = Graph(needs)
    failing = data.draw(st.sets(st.sampled_from(list(needs))))
    states = {job: PENDING for job in needs}
    running: list[str] = []
    while True:
        step = graph.advance(states)
        for job, _reason in step.skip.items():
            states[job] = SKIPPED
        for job in step.start:
            assert all(states[n] == COMPLETED for n in needs[job])
            states[job] = RUNNING
            running.append(job)
        if not running:
            break
        job = running.pop(data.draw(st.integers(0, len(running) - 1)))
        states[job] = FAILED if job in failing else COMPLETED
    for job in needs:
        blocked = any(states[up] == FAILED for up in graph.upstream(job))
        assert states[job] == (SKIPPED if blocked else FAILED if job in failing else COMPLETED)
    ended = workflow_status(states.values())
    assert ended == (FAILED if any(s == FAILED for s in states.values()) else COMPLETED)
