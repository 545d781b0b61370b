from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from taskchain.engine.submit import prepare
from taskchain.errors import AmbiguousId, ChainNotFound
from taskchain.store import ChainRecord, Status, get_engine, queries, session, transitions
from taskchain.store.models import utcnow

#: Every test here runs on SQLite and on PostgreSQL (the `store_url` fixture's two params).
pytestmark = pytest.mark.usefixtures("store_url")

LATER = utcnow() + timedelta(hours=1)


def record(
    numbers: list[int], *, chain_id: str | None = None, created: datetime | None = None
) -> str:
    chain, steps = prepare("math_chain", {"numbers": numbers}, chain_id=chain_id)
    if created is not None:
        chain.created_at = created
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)
    return chain.id


def run_all(chain_id: str) -> None:
    """Move every step through start and complete, as a worker would."""
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    for step in view.steps:
        with session(write=True) as s:
            assert transitions.claim_step(
                session=s, chain_id=chain_id, index=step.index, token="t", lease_until=LATER
            )
            assert transitions.complete_step(
                session=s, chain_id=chain_id, index=step.index, token="t", result=step.index,
                last=step.index == len(view.steps) - 1,
            )  # fmt: skip


def test_each_backend_is_set_up_for_many_writers(store_url: str) -> None:
    with get_engine().connect() as conn:
        if store_url.startswith("sqlite"):
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
        else:
            # The claims and leases are conditional UPDATEs: under READ COMMITTED the loser
            # of a race sees the winner's row and updates nothing (no serialization errors).
            assert conn.dialect.driver == "psycopg"
            assert conn.execute(text("SHOW transaction_isolation")).scalar() == "read committed"


def test_times_come_back_aware_utc() -> None:
    chain_id = record([1, 2])
    with session() as s:
        chain = queries.get_chain(session=s, chain_id=chain_id).chain
    assert chain.created_at.tzinfo is not None
    assert abs(chain.created_at - utcnow()) < timedelta(seconds=5)


def test_status_only_moves_forward() -> None:
    chain_id = record([1, 2, 3])
    run_all(chain_id)
    with session(write=True) as s:
        # A finished step cannot be started, failed or completed again.
        assert not transitions.claim_step(
            session=s, chain_id=chain_id, index=0, token="t2", lease_until=LATER
        )
        assert not transitions.fail_step(session=s, chain_id=chain_id, index=1, error="late")
        assert not transitions.cancel_chain(session=s, chain_id=chain_id)
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    assert view.chain.status == Status.COMPLETED
    assert [st.status for st in view.steps] == [Status.COMPLETED, Status.COMPLETED]
    assert [st.attempts for st in view.steps] == [1, 1]


def test_failure_skips_the_rest_in_one_transaction() -> None:
    chain_id = record([1, 2, 3, 4])
    with session(write=True) as s:
        transitions.claim_step(session=s, chain_id=chain_id, index=0, token="t2", lease_until=LATER)
        transitions.fail_step(session=s, chain_id=chain_id, index=0, error="boom")
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    assert view.chain.status == Status.FAILED
    assert view.chain.error == "step 1 (add 2) failed: boom"
    assert [st.status for st in view.steps] == [Status.FAILED, Status.SKIPPED, Status.SKIPPED]


def test_resolve_prefixes() -> None:
    record([1, 2], chain_id="abc123")
    record([1, 2], chain_id="abd456")
    record([1, 2], chain_id="a_c")
    with session() as s:
        assert queries.resolve_id(session=s, ref="abc") == "abc123"
        assert queries.resolve_id(session=s, ref="a_") == "a_c"  # _ is not a wildcard
        with pytest.raises(AmbiguousId, match="abc123, abd456"):
            queries.resolve_id(session=s, ref="ab")
        with pytest.raises(ChainNotFound):
            queries.resolve_id(session=s, ref="zz")


def test_list_filters_and_order() -> None:
    now = utcnow()
    old = record([1, 2], chain_id="old", created=now - timedelta(days=3))
    mid = record([1, 2], chain_id="mid", created=now - timedelta(hours=1))
    new = record([1, 2], chain_id="new", created=now)
    run_all(mid)
    with session() as s:
        ids = lambda **kw: [c.id for c in queries.list_chains(session=s, **kw)]  # noqa: E731
        assert ids() == [new, mid, old]
        assert ids(limit=2) == [new, mid]
        assert ids(limit=2, offset=2) == [old]
        assert ids(statuses=[Status.COMPLETED]) == [mid]
        assert ids(statuses=[Status.PENDING, Status.COMPLETED]) == [new, mid, old]
        assert ids(since=now - timedelta(hours=2)) == [new, mid]
        assert ids(until=now - timedelta(minutes=1)) == [mid, old]
        assert ids(types=["data_chain"]) == []


def test_stats_are_counted_in_sql() -> None:
    first, second = record([1, 2]), record([3, 4, 5])
    record([9, 9])
    run_all(first)
    run_all(second)
    with session() as s:
        totals = queries.stats(session=s)
    assert totals.total == 3
    assert totals.by_status == {
        "PENDING": 1,
        "RUNNING": 0,
        "COMPLETED": 2,
        "FAILED": 0,
        "CANCELLED": 0,
    }
    assert totals.by_type == {"math_chain": {"total": 3, "PENDING": 1, "COMPLETED": 2}}
    assert totals.durations["count"] == 2
    assert totals.durations["p50"] is not None and totals.durations["p95"] is not None
    assert totals.durations["min"] <= totals.durations["p50"] <= totals.durations["max"]  # type: ignore[operator]


def test_delete_removes_steps_too() -> None:
    chain_id = record([1, 2, 3])
    with session(write=True) as s:
        assert queries.delete_chains(session=s, chain_ids=[chain_id]) == 1
    with session() as s:
        assert s.get(ChainRecord, chain_id) is None
        assert queries.get_step(session=s, chain_id=chain_id, index=0) is None


def test_a_claim_is_a_lease() -> None:
    chain_id = record([1, 2, 3])
    now = utcnow()
    with session(write=True) as s:
        assert transitions.claim_step(
            session=s, chain_id=chain_id, index=0, token="a", lease_until=now + timedelta(minutes=1)
        )
        # Held: nobody else may take it, nor record it.
        assert not transitions.claim_step(
            session=s, chain_id=chain_id, index=0, token="b", lease_until=now + timedelta(minutes=1)
        )
        assert not transitions.complete_step(
            session=s, chain_id=chain_id, index=0, token="b", result=1, last=False
        )
        assert transitions.renew_lease(
            session=s, chain_id=chain_id, index=0, token="a", lease_until=now - timedelta(seconds=1)
        )
        # Expired: another worker takes over, and the first one's late result is not recorded.
        assert transitions.claim_step(
            session=s, chain_id=chain_id, index=0, token="b", lease_until=now + timedelta(minutes=1)
        )
        assert not transitions.complete_step(
            session=s, chain_id=chain_id, index=0, token="a", result=99, last=False
        )
        assert transitions.complete_step(
            session=s, chain_id=chain_id, index=0, token="b", result=3, last=False
        )
    with session() as s:
        step = queries.get_step(session=s, chain_id=chain_id, index=0)
    assert step is not None
    assert (step.status, step.result, step.attempts, step.worker) == (Status.COMPLETED, 3, 2, "b")


def test_stale_steps_finds_expired_leases_and_lost_messages() -> None:
    now = utcnow()
    waiting = record([1, 2])  # step 0 sent at creation
    running = record([1, 2, 3])
    with session(write=True) as s:
        transitions.claim_step(
            session=s, chain_id=running, index=0, token="a", lease_until=now - timedelta(seconds=1)
        )
    with session() as s:
        assert queries.stale_steps(
            session=s, now=now, pending_after=now - timedelta(minutes=1)
        ) == [(running, 0)]
        found = queries.stale_steps(session=s, now=now, pending_after=now + timedelta(seconds=1))
    assert sorted(found) == sorted([(running, 0), (waiting, 0)])


def test_reopen_runs_again_from_the_first_unfinished_step() -> None:
    chain_id = record([4, 2, 0, 1])
    with session(write=True) as s:
        transitions.claim_step(session=s, chain_id=chain_id, index=0, token="t", lease_until=LATER)
        transitions.complete_step(
            session=s, chain_id=chain_id, index=0, token="t", result=6, last=False
        )
        transitions.claim_step(session=s, chain_id=chain_id, index=1, token="t", lease_until=LATER)
        transitions.fail_step(session=s, chain_id=chain_id, index=1, error="boom", token="t")
        assert (
            transitions.reopen_chain(session=s, chain_id=chain_id, new_task_ids={1: "n1", 2: "n2"})
            == 1
        )
        assert transitions.reopen_chain(session=s, chain_id=chain_id, new_task_ids={1: "x"}) is None
    with session() as s:
        view = queries.get_chain(session=s, chain_id=chain_id)
    assert (view.chain.status, view.chain.attempt, view.chain.error) == (Status.RUNNING, 2, None)
    assert [(st.status, st.result, st.task_id) for st in view.steps[1:]] == [
        (Status.PENDING, None, "n1"), (Status.PENDING, None, "n2"),
    ]  # fmt: skip
    assert view.steps[0].result == 6
