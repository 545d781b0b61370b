"""Step leases: one thread per process renews every long step's lease; short steps cost none."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from taskchain import settings
from taskchain.engine import leases, runner
from taskchain.engine.submit import prepare
from taskchain.store import queries, session, transitions
from taskchain.store.models import utcnow


def record(numbers: list[int]) -> str:
    chain, steps = prepare("math_chain", {"numbers": numbers})
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    return chain.id


def lease_of(chain_id: str, index: int) -> object:
    with session() as s:
        step = queries.get_step(session=s, chain_id=chain_id, index=index)
    assert step is not None
    return step.lease_expires_at


def test_short_steps_start_no_thread_each(monkeypatch: pytest.MonkeyPatch) -> None:
    chain_id = record([1] * 31)
    started: list[str] = []
    start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    index: int | None = 0
    while index is not None:
        index = runner.execute_step(chain_id, index, worker="t")
    # At most the process's one lease thread, started once (by an earlier test, or now).
    assert started in ([], ["taskchain-step-leases"])
    assert leases.holding() == 0
    with session() as s:
        assert queries.get_chain(session=s, chain_id=chain_id).chain.result == 31


def test_short_steps_do_not_wake_the_lease_thread_each(monkeypatch: pytest.MonkeyPatch) -> None:
    chain_id = record([1] * 31)
    runner.execute_step(chain_id, 0, worker="t")  # the thread runs, its next wake planned
    wakes: list[int] = []
    wake = leases._wake.set

    def counting_set() -> None:
        wakes.append(1)
        wake()

    monkeypatch.setattr(leases._wake, "set", counting_set)
    index: int | None = 1
    while index is not None:
        index = runner.execute_step(chain_id, index, worker="t")
    # Each new lease is due after the one the thread already sleeps until: no wake-up.
    assert len(wakes) <= 1
    assert leases.holding() == 0


def test_a_long_step_has_its_lease_renewed_and_a_finished_one_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKCHAIN_STEP_LEASE", "5")
    settings.configure()
    long, short = record([1, 2]), record([1, 2])
    for chain_id, token in ((long, "long"), (short, "short")):
        with session(write=True) as s:
            assert transitions.claim_step(
                session=s, chain_id=chain_id, index=0, token=token,
                lease_until=utcnow() + timedelta(seconds=5),
            )  # fmt: skip
    first_long, first_short = lease_of(long, 0), lease_of(short, 0)
    with leases.held(long, 0, "long"):
        with leases.held(short, 0, "short"):
            pass  # returned at once: never renewed
        assert leases.holding() == 1
        deadline = time.monotonic() + 30  # renewed after a third of the lease (~1.7 s)
        while lease_of(long, 0) == first_long and time.monotonic() < deadline:
            time.sleep(0.1)
        renewed = lease_of(long, 0)
    assert renewed != first_long
    assert renewed > first_long  # type: ignore[operator]
    assert lease_of(short, 0) == first_short
    assert leases.holding() == 0
