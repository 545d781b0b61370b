"""Store functions: take the session, keyword-only, return typed values. Aggregates are SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, delete, func, insert
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from taskchain.errors import AmbiguousId, ChainNotFound
from taskchain.store import tables, tally
from taskchain.store.db import Prepared
from taskchain.store.tables import CHAIN_STATUSES, CHAIN_TALLY, DURATION_HIST, Status, utcnow

if TYPE_CHECKING:
    from taskchain.store.models import ChainRecord, StepRecord


def __getattr__(name: str) -> Any:
    # The SQLModel records, for the code that writes: built on first use, so that the read
    # functions (which return rows of the tables, see ChainView) never build them.
    if name in ("ChainRecord", "StepRecord"):
        from taskchain.store import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


LIVE = (Status.PENDING, Status.RUNNING)
_CHAIN: Table = tables.chain
_STEP: Table = tables.step


def is_orphaned(chain: ChainRecord, *, now: datetime | None = None) -> bool:
    """An unfinished chain whose embedded runner stopped renewing its lease: that process died
    (or is frozen), and nothing else will run the chain until it is retried."""
    return (
        chain.status in LIVE
        and chain.runner is not None
        and chain.runner_lease_expires_at is not None
        and chain.runner_lease_expires_at < (now or utcnow())
    )


def _orphaned_clause(now: datetime) -> Any:
    c = _CHAIN.c
    return c.status.in_(list(LIVE)) & c.runner.is_not(None) & (c.runner_lease_expires_at < now)


def runner_label(token: str) -> str:
    """`pid 123 on host h` for a runner token `h:123:nonce` (see engine/embedded.py)."""
    host, _, rest = token.rpartition(":")[0].rpartition(":")
    return f"pid {rest} on host {host}" if host else token


@dataclass(frozen=True)
class ChainView:
    """A chain with its steps, as read in one transaction.

    `get_chain` fills it with rows of the `chain` and `step` tables (Core, no ORM objects:
    cheaper to read, and never refreshed behind the reader's back). A row reads like the
    record: the same attribute names and the same Python values, but read-only."""

    chain: ChainRecord
    steps: list[StepRecord]


def insert_chain(*, session: Session, chain: ChainRecord, steps: Sequence[StepRecord]) -> None:
    rows = [step.model_dump() for step in steps]
    insert_chains(session.connection(), [(chain.model_dump(), rows)])


Row = dict[str, Any]


# Built once, and run on the driver's cursor on SQLite and PostgreSQL (see `db.Prepared`).
_INSERT_CHAIN = Prepared(insert(_CHAIN))
_INSERT_STEP = Prepared(insert(_STEP))


def insert_chains(conn: Connection, chains: Sequence[tuple[Row, Sequence[Row]]]) -> None:
    """Record chains and their steps, given as rows (every column): one INSERT for the
    chains, one for all their steps (Core, no ORM unit of work: submit is a hot path)."""
    if not chains:
        return
    _INSERT_CHAIN.many(conn, [chain for chain, _ in chains])
    _INSERT_STEP.many(conn, [step for _, steps in chains for step in steps])


def chain_row(
    *,
    chain_id: str,
    type: str,
    description: str,
    config: dict[str, Any],
    step_count: int,
    created_at: datetime,
    workspace: str,
    submit_host: str,
    runner: str | None = None,
    runner_lease_expires_at: datetime | None = None,
) -> Row:
    """A new chain's row, every column given, as `ChainRecord(...).model_dump()` would give
    it without building the model (which costs more than the INSERT)."""
    return {
        "id": chain_id, "type": type, "description": description, "status": Status.PENDING,
        "config": config, "created_at": created_at, "started_at": None, "finished_at": None,
        "result": None, "error": None, "step_count": step_count, "cancel_requested": False,
        "attempt": 1, "runner": runner, "runner_lease_expires_at": runner_lease_expires_at,
        "workspace": workspace, "submit_host": submit_host, "workflow_id": None, "job": None,
        "duration_us": None,
    }  # fmt: skip


def step_row(
    *,
    chain_id: str,
    index: int,
    name: str,
    queue: str,
    params: dict[str, Any],
    task_id: str,
    dispatched_at: datetime | None,
) -> Row:
    """A new step's row, every column given (the rows of one INSERT must agree on them)."""
    return {
        "chain_id": chain_id, "index": index, "name": name, "queue": queue, "params": params,
        "status": Status.PENDING, "task_id": task_id, "attempts": 0, "started_at": None,
        "finished_at": None, "result": None, "error": None, "progress": None, "worker": None,
        "lease_expires_at": None, "dispatched_at": dispatched_at,
    }  # fmt: skip


def existing_ids(conn: Connection, chain_ids: Sequence[str]) -> set[str]:
    """Which of `chain_ids` are recorded already."""
    if not chain_ids:
        return set()
    rows = conn.execute(select(_CHAIN.c.id).where(_CHAIN.c.id.in_(list(chain_ids))))
    return {row[0] for row in rows}


def resolve_id(*, session: Session, ref: str) -> str:
    """The full id of the one chain whose id is `ref` or starts with it."""
    matches = matching_ids(session=session, table=_CHAIN, ref=ref)
    if not matches:
        raise ChainNotFound(ref)
    if len(matches) > 1:
        raise AmbiguousId(ref, matches)
    return matches[0]


def matching_ids(*, session: Session, table: Table, ref: str) -> list[str]:
    """`[ref]` if `table` has a row with that id, else the ids starting with it (at most 6)."""
    key = table.c.id
    if session.execute(core_select(key).where(key == ref)).first() is not None:
        return [ref]
    query = core_select(key).where(starts_with(key, ref)).limit(6)
    return list(session.execute(query).scalars().all())


def starts_with(column: Any, prefix: str) -> Any:
    """`column` starts with `prefix`, as a range of the key index (`id >= 'ab' AND id <
    'ac'`), which both databases seek, not a LIKE, which SQLite answers by a scan; the LIKE
    stays beside it as the exact test (the range is exact under a byte-order collation)."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    clause = (column >= prefix) & column.like(pattern, escape="\\")
    last = ord(prefix[-1]) if prefix else 0x10FFFF
    if last < 0x10FFFF:
        clause &= column < prefix[:-1] + chr(last + 1)
    return clause


def get_chain(*, session: Session, chain_id: str) -> ChainView:
    chain = session.execute(core_select(_CHAIN).where(_CHAIN.c.id == chain_id)).first()
    if chain is None:
        raise ChainNotFound(chain_id)
    steps = session.execute(
        core_select(_STEP).where(_STEP.c.chain_id == chain_id).order_by(_STEP.c.index)
    ).all()
    # Rows, typed as the records they read like (see ChainView).
    return ChainView(chain=cast("ChainRecord", chain), steps=cast("list[StepRecord]", steps))


def get_step(*, session: Session, chain_id: str, index: int) -> StepRecord | None:
    from taskchain.store.models import StepRecord

    return session.get(StepRecord, (chain_id, index))


def list_chains(
    *,
    session: Session,
    statuses: Sequence[Status] = (),
    types: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 20,
    offset: int = 0,
) -> list[ChainRecord]:
    """The chains matching every filter given, newest first, as rows (see ChainView)."""
    c = _CHAIN.c
    query = core_select(_CHAIN)
    if statuses:
        query = query.where(c.status.in_(list(statuses)))
    if types:
        query = query.where(c.type.in_(list(types)))
    if since is not None:
        query = query.where(c.created_at >= since)
    if until is not None:
        query = query.where(c.created_at < until)
    query = query.order_by(c.created_at.desc(), c.id.desc())
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return cast("list[ChainRecord]", session.execute(query).all())


def workflow_counts(*, session: Session) -> dict[str, int]:
    """Workflows per status, every workflow status present (0 when none): one grouped COUNT."""
    counts = {s.value: 0 for s in CHAIN_STATUSES}
    w = tables.workflow.c
    for status, count in session.execute(core_select(w.status, func.count()).group_by(w.status)):
        counts[Status(status).value] = counts.get(Status(status).value, 0) + int(count)
    return counts


@dataclass
class Stats:
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    durations: dict[str, float | int | None] = field(default_factory=dict)
    #: PENDING/RUNNING chains (counted there too) whose embedded runner died.
    orphaned: int = 0


def stats(*, session: Session) -> Stats:
    """Totals from the tallies the triggers keep (tally.py): a few hundred rows read and
    two index walks, whatever the number of chains. On PostgreSQL one snapshot for all."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    result = Stats(by_status={s.value: 0 for s in CHAIN_STATUSES})
    t = CHAIN_TALLY.c
    rows = session.execute(
        core_select(t.type, t.status, func.sum(t.chains), func.sum(t.timed), func.sum(t.total_us))
        .group_by(t.type, t.status)
        .order_by(t.type, t.status)
    ).all()
    timed = total_us = 0
    for type_, status, count, timed_here, us in rows:
        count, timed_here, us = int(count), int(timed_here), int(us)
        timed, total_us = timed + timed_here, total_us + us
        if not count:
            continue
        result.total += count
        result.by_status[Status(status).value] = result.by_status.get(status, 0) + count
        per_type = result.by_type.setdefault(type_, {"total": 0})
        per_type["total"] += count
        per_type[Status(status).value] = count
    ranks = {name: _rank(q, timed) for name, q in (("p50", 0.5), ("p95", 0.95))}
    spots = _buckets(session, ranks) if timed else {}
    d = _CHAIN.c.duration_us
    extra = [
        core_select(func.min(d)).scalar_subquery(),
        core_select(func.max(d)).scalar_subquery(),
        core_select(func.count())
        .select_from(_CHAIN)
        .where(_orphaned_clause(utcnow()))
        .scalar_subquery(),
        *(_nth(lo, offset) for lo, offset in spots.values()),
    ]
    low, high, result.orphaned, *values = session.execute(core_select(*extra)).one()
    result.durations = {
        "count": timed,
        "min": _seconds(low) if timed else None,
        "mean": round(total_us / timed / 1e6, 3) if timed else None,
        "max": _seconds(high) if timed else None,
        **{name: None for name in ranks},
        **{name: _seconds(v) for name, v in zip(spots, values, strict=True)},
    }
    return result


def _rank(q: float, count: int) -> int:
    """The 0-based rank of the q-quantile among `count` sorted values (nearest rank)."""
    return min(count - 1, max(0, round(q * (count - 1))))


def _buckets(session: Session, ranks: dict[str, int]) -> dict[str, tuple[int | None, int]]:
    """For each rank: the lower bound of the histogram bucket holding it, and its offset
    among the values from that bound up."""
    h = DURATION_HIST.c
    rows = session.execute(
        core_select(h.bucket, func.sum(h.chains))
        .group_by(h.bucket)
        .having(func.sum(h.chains) != 0)
        .order_by(h.bucket)
    ).all()
    found: dict[str, tuple[int | None, int]] = {}
    below = 0
    for bucket, count in rows:
        for name, k in ranks.items():
            if name not in found and below <= k < below + int(count):
                found[name] = (tally.lower_bound(int(bucket)), k - below)
        below += int(count)
    return found


def _nth(lo: int | None, offset: int) -> Any:
    d = _CHAIN.c.duration_us
    query = core_select(d).where(d.is_not(None) if lo is None else d >= lo)
    return query.order_by(d).offset(offset).limit(1).scalar_subquery()


def _seconds(us: Any) -> float | None:
    return None if us is None else round(int(us) / 1e6, 3)


def delete_chains(*, session: Session, chain_ids: Sequence[str]) -> int:
    session.execute(delete(_STEP).where(_STEP.c.chain_id.in_(list(chain_ids))))
    res = session.execute(delete(_CHAIN).where(_CHAIN.c.id.in_(list(chain_ids))))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def chain_status(*, session: Session, chain_id: str) -> Status | None:
    status = session.execute(core_select(_CHAIN.c.status).where(_CHAIN.c.id == chain_id)).scalar()
    return Status(status) if status is not None else None


def stale_steps(
    *, session: Session, now: datetime, pending_after: datetime, limit: int = 500
) -> list[tuple[str, int]]:
    """Steps whose message may be lost: RUNNING under an expired lease, or PENDING, next in
    line (its predecessor COMPLETED, or the first step) and sent before `pending_after`."""
    from sqlalchemy import and_, or_
    from sqlalchemy.orm import aliased

    from taskchain.store.models import ChainRecord, StepRecord

    before = aliased(StepRecord)
    live = col(ChainRecord.status).in_([Status.PENDING, Status.RUNNING])
    expired = and_(col(StepRecord.status) == Status.RUNNING, col(StepRecord.lease_expires_at) < now)
    waiting = and_(
        col(StepRecord.status) == Status.PENDING,
        or_(col(StepRecord.dispatched_at).is_(None), col(StepRecord.dispatched_at) < pending_after),
        or_(col(StepRecord.index) == 0, col(before.status) == Status.COMPLETED),
    )
    query = (
        select(StepRecord.chain_id, StepRecord.index)
        .join(ChainRecord, col(ChainRecord.id) == col(StepRecord.chain_id))
        .outerjoin(
            before,
            and_(
                col(before.chain_id) == col(StepRecord.chain_id),
                col(before.index) == col(StepRecord.index) - 1,
            ),
        )
        .where(live, col(ChainRecord.cancel_requested).is_(False), or_(expired, waiting))
        # An embedded chain belongs to its process; orphaned, it waits for `retry`.
        .where(col(ChainRecord.runner).is_(None))
        .limit(limit)
    )
    return [(chain_id, index) for chain_id, index in session.exec(query).all()]
