"""Stats that do not grow with the history (issue 10, target 3): the tallies the store's
triggers keep are exact against a count over the rows after every kind of write (submit, a
step's record, fail, cancel, retry, delete, prune, a bulk INSERT, a rolled-back write),
p50/p95 equal the sorted values' own, and the read queries use their indexes."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from taskchain.errors import AmbiguousId, ChainNotFound
from taskchain.store import Status, get_engine, queries, session, tally, transitions
from taskchain.store.models import CHAIN_STATUSES, utcnow
from taskchain.store.prune import prune
from tests.unit.test_store import LATER, record, run_all

pytestmark = pytest.mark.usefixtures("store_url")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = str(Path(__file__).resolve().parents[2])  # the checkout, for a child process


def rows(rng: random.Random, n: int) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """n chains in every status, with run times from 0 µs to hours (many ties)."""
    out = []
    for i in range(n):
        status = rng.choice(CHAIN_STATUSES)
        started = T0 + timedelta(seconds=rng.randrange(86400), microseconds=rng.randrange(10**6))
        run = timedelta(microseconds=rng.choice([0, 7, 99, 100, 1000, rng.randrange(10**10)]))
        finished = started + run if status.finished else None
        chain = {
            "id": f"bulk{i:05d}-{rng.getrandbits(64):016x}", "type": rng.choice(["a", "b"]),
            "description": "", "status": status, "config": {}, "created_at": started,
            "started_at": None if status is Status.PENDING else started, "finished_at": finished,
            "result": None, "error": None, "step_count": 1, "cancel_requested": False,
            "attempt": 1, "runner": None, "runner_lease_expires_at": None, "workspace": None,
            "submit_host": None, "workflow_id": None, "job": None, "duration_us": None,
        }  # fmt: skip
        step = queries.step_row(
            chain_id=chain["id"], index=0, name="add", queue="q", params={}, task_id=chain["id"],
            dispatched_at=None,
        )  # fmt: skip
        out.append((chain, [step]))
    return out


def brute_force() -> dict[str, Any]:
    """What stats must say, from the rows themselves (times read back, run times in Python)."""
    with get_engine().connect() as conn:
        found = conn.execute(text("SELECT type, status, started_at, finished_at FROM chain")).all()
    by_type: dict[str, Counter[str]] = {}
    runs = []
    for type_, status, started, finished in found:
        by_type.setdefault(type_, Counter())[str(status)] += 1
        if started is not None and finished is not None:
            runs.append((_aware(finished) - _aware(started)) // timedelta(microseconds=1))
    runs.sort()
    durations: dict[str, Any] = {"count": len(runs), "min": None, "mean": None, "max": None,
                                 "p50": None, "p95": None}  # fmt: skip
    if runs:
        durations.update(
            min=round(runs[0] / 1e6, 3),
            max=round(runs[-1] / 1e6, 3),
            mean=round(sum(runs) / len(runs) / 1e6, 3),
            p50=round(runs[min(len(runs) - 1, round(0.5 * (len(runs) - 1)))] / 1e6, 3),
            p95=round(runs[min(len(runs) - 1, round(0.95 * (len(runs) - 1)))] / 1e6, 3),
        )
    statuses = Counter[str]()
    for counts in by_type.values():
        statuses.update(counts)
    return {
        "total": sum(statuses.values()),
        "by_status": {s.value: statuses.get(s.value, 0) for s in CHAIN_STATUSES},
        "by_type": {t: {"total": sum(c.values()), **c} for t, c in by_type.items()},
        "durations": durations,
    }


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite, read without the column type
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def stats() -> dict[str, Any]:
    with session() as s:
        got = queries.stats(session=s)
    return {"total": got.total, "by_status": got.by_status, "by_type": got.by_type,
            "durations": got.durations}  # fmt: skip


def test_stats_are_exact_after_every_kind_of_write() -> None:
    rng = random.Random(10)
    assert stats() == brute_force()
    with get_engine().begin() as conn:  # a bulk INSERT, as the benchmark's filler does
        queries.insert_chains(conn, rows(rng, 300))
    assert stats() == brute_force()
    assert stats()["total"] == 300

    done = record([1, 2, 3])
    run_all(done)  # claims and records: RUNNING, then COMPLETED with a run time
    failed = record([4, 5])
    with session(write=True) as s:
        assert transitions.claim_step(
            session=s, chain_id=failed, index=0, token="t", lease_until=LATER
        )
        assert transitions.fail_step(session=s, chain_id=failed, index=0, error="boom", token="t")
    cancelled = record([6, 7])
    with session(write=True) as s:
        assert transitions.cancel_chain(session=s, chain_id=cancelled)
    assert stats() == brute_force()

    with session(write=True) as s:  # retry: FAILED -> RUNNING, its run time gone
        assert transitions.reopen_chain(session=s, chain_id=failed, new_task_ids={0: "n"}) == 0
    assert stats() == brute_force()

    bulk = [f"bulk{i:05d}" for i in range(0, 300, 7)]
    with session() as s:
        ids = [queries.resolve_id(session=s, ref=prefix) for prefix in bulk]
    with session(write=True) as s:
        assert queries.delete_chains(session=s, chain_ids=[*ids, done]) == len(ids) + 1
    assert stats() == brute_force()

    gone = prune(before=T0 + timedelta(hours=12), statuses=[Status.COMPLETED, Status.FAILED])
    assert gone.chains > 10
    assert stats() == brute_force()

    # A write that dies half-way (after its INSERT and UPDATE, before COMMIT) counts nothing.
    before = stats()
    with pytest.raises(RuntimeError), get_engine().begin() as conn:
        queries.insert_chains(conn, rows(rng, 20))
        conn.execute(text("UPDATE chain SET status = 'CANCELLED' WHERE status = 'RUNNING'"))
        raise RuntimeError("the process dies here")
    assert stats() == before == brute_force()

    # A process killed mid-write (its INSERT sent, no COMMIT) counts nothing either.
    script = (
        "import os, random\n"
        "from taskchain.store import get_engine, queries\n"
        "from tests.unit.test_store_scale import rows\n"
        "conn = get_engine().connect()\n"
        "conn.begin()\n"
        "queries.insert_chains(conn, rows(random.Random(7), 30))\n"
        "print(conn.exec_driver_sql('SELECT count(*) FROM chain').scalar(), flush=True)\n"
        "os._exit(9)\n"
    )
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip
    assert (died.returncode, died.stdout) == (9, f"{before['total'] + 30}\n"), died.stderr
    assert stats() == before == brute_force()

    with session(write=True) as s:  # everything goes: zeros, not stale sums
        queries.delete_chains(
            session=s, chain_ids=[r[0] for r in s.execute(text("SELECT id FROM chain"))]
        )
    empty = stats()
    assert empty == brute_force()
    assert (empty["total"], empty["by_type"], empty["durations"]["p50"]) == (0, {}, None)


def test_p50_and_p95_are_the_exact_values_across_buckets() -> None:
    """Run times spread over many histogram buckets, ties inside them and at bucket edges."""
    rng = random.Random(3)
    many = rows(rng, 400)
    edges = [99, 100, 109, 110, 999, 1000, 1099, 10**6, 10**6 + 1]
    for (chain, _), us in zip(many, edges * 50, strict=False):
        chain["status"], chain["started_at"] = Status.COMPLETED, T0
        chain["finished_at"] = T0 + timedelta(microseconds=us + rng.choice([0, 0, 1, 5000]))
    with get_engine().begin() as conn:
        queries.insert_chains(conn, many)
    assert stats()["durations"] == brute_force()["durations"]
    for n in (1, 2, 3):  # the smallest histories: the rank is at an end
        with session(write=True) as s:
            queries.delete_chains(session=s, chain_ids=[c["id"] for c, _ in many])
        with get_engine().begin() as conn:
            queries.insert_chains(conn, rows(random.Random(n), n))
        assert stats() == brute_force()
        many = []
        with get_engine().connect() as conn:
            many = [({"id": i}, []) for (i,) in conn.execute(text("SELECT id FROM chain"))]


def test_the_histogram_buckets_are_ordered_and_their_bounds_are_exact() -> None:
    values = sorted({0, 1, 99, 100, 101, 109, 110, 999, 1000, 1099, 1100, 9999, 10**12,
                     *random.Random(1).sample(range(10**9), 500)})  # fmt: skip
    buckets = [tally.bucket(v) for v in values]
    assert buckets == sorted(buckets)
    for v, b in zip(values, buckets, strict=True):
        low = tally.lower_bound(b)
        assert low is not None and low <= v and tally.bucket(low) == b
        assert v < 100 or (v - low) * 10 < low + 10 ** (len(str(v)) - 2)  # under 10% wide
    assert tally.bucket(-5) == -1 and tally.lower_bound(-1) is None


def test_a_prefix_is_resolved_by_a_range_of_the_key_index() -> None:
    for chain_id in ("abc1", "abc2", "abd1", "ab_y", "abzy", "b"):
        record([1, 2], chain_id=chain_id)
    with session() as s:
        assert queries.resolve_id(session=s, ref="abd") == "abd1"
        assert queries.resolve_id(session=s, ref="ab_") == "ab_y"  # `_` is no wildcard
        assert queries.resolve_id(session=s, ref="b") == "b"
        with pytest.raises(AmbiguousId, match="abc1"):
            queries.resolve_id(session=s, ref="abc")
        for missing in ("ab%", "ABD", "abd1x", "c"):  # case counts, on every store
            with pytest.raises(ChainNotFound):
                queries.resolve_id(session=s, ref=missing)


# ---- the plans: the read commands' queries seek their indexes (SQLite's EXPLAIN QUERY PLAN).


def plan(sql: str, params: dict[str, Any]) -> str:
    with get_engine().connect() as conn:
        assert conn.dialect.name == "sqlite"
        found = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
    return "\n".join(str(row[-1]) for row in found)


def captured(run: Any) -> list[tuple[str, Any]]:
    """The SQL statements (with their parameters) `run` sends."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", keep)
    try:
        with session() as s:
            run(s)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    return seen


#: What `stats`, `list --status FAILED --limit 20`, `list --since 1h` and `status PREFIX` ask.
READ_QUERIES: dict[str, Any] = {
    "stats": lambda s: queries.stats(session=s),
    "list --status": lambda s: queries.list_chains(session=s, statuses=[Status.FAILED], limit=20),
    "list --since": lambda s: queries.list_chains(session=s, since=utcnow() - timedelta(hours=1)),
    "prefix": lambda s: queries.resolve_id(session=s, ref="bulk00012"),
}


# On SQLite only: PostgreSQL's plans depend on its statistics (the README shows them).
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_read_queries_use_their_indexes() -> None:
    with get_engine().begin() as conn:
        queries.insert_chains(conn, rows(random.Random(5), 50))
    plans = {}
    for name, run in READ_QUERIES.items():
        plans[name] = [plan(sql, params) for sql, params in captured(run)]
    for name, found in plans.items():
        for text_ in found:
            scans = [line for line in text_.splitlines() if line.startswith("SCAN chain ")]
            assert not scans, (name, text_)  # no walk over the whole table or an index
            # No sort of what was found; ties on created_at are put in id order, the next
            # row at most (SQLite's "RIGHT PART" sort stops at the LIMIT).
            sorts = [line for line in text_.splitlines() if "TEMP B-TREE" in line]
            assert sorts in ([], ["USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"]), (name, text_)
    every = "\n".join("\n".join(p) for p in plans.values())
    assert "SCAN chain_tally" in every and "SCAN duration_hist" in every  # small tables
    assert "USING COVERING INDEX ix_chain_duration (duration_us>?)" in every
    assert "USING INDEX ix_chain_status_lease" in every
    assert "USING INDEX ix_chain_status_created (status=?)" in every
    assert "USING INDEX ix_chain_created (created_at>?)" in every
    assert "USING COVERING INDEX sqlite_autoindex_chain_1 (id>? AND id<?)" in every


# PostgreSQL chooses a plan by its statistics, so on a small table it may well scan: with
# sequential scans priced out (`enable_seqscan = off`), each query must still find an index
# path, or PostgreSQL scans anyway. That is the guard: an index serves every read query.
# (Whether it sorts what it found depends on the statistics too: the README shows the plans
# at a million chains, an Incremental Sort of ties at most.)
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_an_index_serves_every_read_query_on_postgresql() -> None:
    with get_engine().begin() as conn:
        queries.insert_chains(conn, rows(random.Random(6), 50))
    plans: dict[str, list[str]] = {}
    with get_engine().connect() as conn:
        assert conn.dialect.name == "postgresql"
        conn.exec_driver_sql("SET enable_seqscan = off")
        for name, run in READ_QUERIES.items():
            plans[name] = [
                "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}", params))
                for sql, params in captured(run)
            ]
    for name, found in plans.items():
        assert found, name
        for text_ in found:
            assert not re.search(r"Seq Scan on chain\b", text_), (name, text_)
    every = "\n".join("\n".join(p) for p in plans.values())
    for index in (
        "ix_chain_duration", "ix_chain_status_lease", "ix_chain_status_created",
        "ix_chain_created", "chain_pkey",
    ):  # fmt: skip
        assert re.search(rf"(using|Index Scan on) {index}\b", every), (index, plans)
