"""Followers of many chains wake on announced changes, not on their next look at the store:
`watch` without an id, and a workflow's watch. The fallback look is set to a minute here,
longer than the test's timeout, so that only an announcement can end each follow in time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from taskchain import settings
from taskchain.cli import watch, workflow_view
from taskchain.engine import runner, wait
from taskchain.engine import workflow as engine
from taskchain.engine.submit import prepare
from taskchain.store import Status, queries, session
from taskchain.store import workflows as wfstore
from taskchain.workflows import spec

pytestmark = pytest.mark.redis

NEVER = 60.0  # the fallback look at the store: never within a test's timeout
TIMEOUT = 20.0


@pytest.fixture
def distributed(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", redis_url)
    settings.configure()
    return redis_url


def record(numbers: list[int]) -> str:
    chain, steps = prepare("math_chain", {"numbers": numbers})
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    return chain.id


def run_chain(chain_id: str) -> None:
    """Every step of the chain, here, as a worker would: each claim and record announced."""
    index: Any = 0
    while index is not None:
        index = runner.execute_step(chain_id, index, worker="test")
        assert not isinstance(index, runner.Busy | runner.Failed), index


def later(first_look: threading.Event, work: Any) -> threading.Thread:
    """Run `work` once the follower has read the store (so it must be woken to see more)."""

    def go() -> None:
        assert first_look.wait(TIMEOUT)
        work()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_there_is_no_feed_without_a_redis_channel() -> None:
    assert wait.Announcements.open() is None  # embedded: polling, as before


def test_watching_every_chain_wakes_on_announcements(distributed: str) -> None:
    chain_id = record([1, 2, 3])
    first_look = threading.Event()
    seen: list[tuple[str, Status]] = []

    def on_change(_all: list[Any], changed: list[Any]) -> None:
        seen.extend((v.chain.id, v.chain.status) for v in changed)
        first_look.set()

    worker = later(first_look, lambda: run_chain(chain_id))
    start = time.monotonic()
    views = watch.follow_all(timeout=TIMEOUT, on_change=on_change, interval=NEVER, fallback=NEVER)
    took = time.monotonic() - start
    worker.join(TIMEOUT)
    assert [(v.chain.id, v.chain.status, v.chain.result) for v in views] == [
        (chain_id, Status.COMPLETED, 6)
    ]
    assert seen[0] == (chain_id, Status.PENDING) and seen[-1] == (chain_id, Status.COMPLETED)
    assert took < TIMEOUT  # StillActive otherwise: nothing but the announcements woke it


def test_a_chain_that_starts_while_watching_is_found_by_its_announcement(
    distributed: str,
) -> None:
    """The first look finds one chain; a second chain, recorded later, is found when its
    first step announces itself (the next search of the store is a minute away)."""
    gate = threading.Event()
    first = record([1, 1])
    first_look = threading.Event()
    second: list[str] = []

    def on_change(_all: list[Any], _changed: list[Any]) -> None:
        first_look.set()

    def work() -> None:
        second.append(record([2, 2]))
        run_chain(second[0])
        gate.set()
        run_chain(first)

    worker = later(first_look, work)
    views = watch.follow_all(timeout=TIMEOUT, on_change=on_change, interval=NEVER, fallback=NEVER)
    worker.join(TIMEOUT)
    assert gate.is_set()
    assert sorted((v.chain.id, v.chain.result) for v in views) == sorted(
        [(first, 2), (second[0], 4)]
    )


def test_a_workflow_watch_wakes_on_its_jobs_and_its_end(
    distributed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workflow's watch polls with a backoff when it has no channel, so here the proof is
    what woke it: announcements, of its jobs' chains and of the workflow itself."""
    heard: list[set[str]] = []
    real_wait = wait.Announcements.wait

    def listening(feed: wait.Announcements, *args: Any, **kwargs: Any) -> set[str] | None:
        got = real_wait(feed, *args, **kwargs)
        heard.append(set(got or ()))
        return got

    monkeypatch.setattr(wait.Announcements, "wait", listening)
    document = {
        "name": "wake",
        "jobs": {
            "a": {"type": "math_chain", "config": {"numbers": [1, 2]}},
            "b": {"type": "math_chain", "needs": ["a"], "config": {"numbers": [3, 4]}},
        },
    }
    loaded = spec.validate(document, source="test", workspace=tmp_path)
    workflow_id = engine.run(loaded).workflow_id  # job a's first step is queued, unconsumed
    first_look = threading.Event()
    states: list[str] = []

    def on_change(view: wfstore.WorkflowView) -> None:
        states.append(view.workflow.status.value)
        first_look.set()

    def work() -> None:
        for job in ("a", "b"):
            with session() as s:
                found = wfstore.get(session=s, workflow_id=workflow_id)
            assert found is not None
            chain = next(c for c in found.jobs if c.job == job)
            run_chain(chain.id)
            engine.after_step(chain.id, app=None)  # the fan-in a worker does after a step

    worker = later(first_look, work)
    final = workflow_view.poll(
        workflow_id, timeout=TIMEOUT, on_change=on_change, interval=NEVER, fallback=NEVER
    )
    worker.join(TIMEOUT)
    assert final.workflow.status == Status.COMPLETED
    assert [(c.job, c.result) for c in final.jobs] == [("a", 3), ("b", 7)]
    assert states[-1] == "COMPLETED"
    # Every wake-up was an announcement (the fallback is a minute away), and of its own ids
    # among them; which ones it heard before the end it read depends on the timing.
    assert heard and all(heard), heard
    assert set().union(*heard) & {workflow_id, *(c.id for c in final.jobs)}
