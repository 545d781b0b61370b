"""Store functions: take the session, keyword-only, return typed values. Aggregates are SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert
from sqlmodel import Session, col, select

from taskchain.errors import AmbiguousId, ChainNotFound
from taskchain.store.models import CHAIN_STATUSES, ChainRecord, Status, StepRecord, utcnow

LIVE = (Status.PENDING, Status.RUNNING)
_CHAIN: Table = ChainRecord.__table__  # type: ignore[attr-defined]
_STEP: Table = StepRecord.__table__  # type: ignore[attr-defined]


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
    return (
        col(ChainRecord.status).in_(list(LIVE))
        & col(ChainRecord.runner).is_not(None)
        & (col(ChainRecord.runner_lease_expires_at) < now)
    )


def runner_label(token: str) -> str:
    """`pid 123 on host h` for a runner token `h:123:nonce` (see engine/embedded.py)."""
    host, _, rest = token.rpartition(":")[0].rpartition(":")
    return f"pid {rest} on host {host}" if host else token


@dataclass(frozen=True)
class ChainView:
    """A chain with its steps, as read in one transaction."""

    chain: ChainRecord
    steps: list[StepRecord]


def insert_chain(*, session: Session, chain: ChainRecord, steps: Sequence[StepRecord]) -> None:
    rows = [step.model_dump() for step in steps]
    insert_chains(session.connection(), [(chain.model_dump(), rows)])


Row = dict[str, Any]


def insert_chains(conn: Connection, chains: Sequence[tuple[Row, Sequence[Row]]]) -> None:
    """Record chains and their steps, given as rows (every column): one INSERT for the
    chains, one for all their steps (Core, no ORM unit of work: submit is a hot path)."""
    if not chains:
        return
    conn.execute(insert(_CHAIN), [chain for chain, _ in chains])
    conn.execute(insert(_STEP), [step for _, steps in chains for step in steps])


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
    if session.get(ChainRecord, ref) is not None:
        return ref
    pattern = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    matches = session.exec(
        select(ChainRecord.id).where(col(ChainRecord.id).like(pattern, escape="\\")).limit(6)
    ).all()
    if not matches:
        raise ChainNotFound(ref)
    if len(matches) > 1:
        raise AmbiguousId(ref, list(matches))
    return matches[0]


def get_chain(*, session: Session, chain_id: str) -> ChainView:
    chain = session.get(ChainRecord, chain_id)
    if chain is None:
        raise ChainNotFound(chain_id)
    steps = session.exec(
        select(StepRecord).where(StepRecord.chain_id == chain_id).order_by(col(StepRecord.index))
    ).all()
    return ChainView(chain=chain, steps=list(steps))


def get_step(*, session: Session, chain_id: str, index: int) -> StepRecord | None:
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
    query = select(ChainRecord)
    if statuses:
        query = query.where(col(ChainRecord.status).in_(list(statuses)))
    if types:
        query = query.where(col(ChainRecord.type).in_(list(types)))
    if since is not None:
        query = query.where(ChainRecord.created_at >= since)
    if until is not None:
        query = query.where(ChainRecord.created_at < until)
    query = query.order_by(col(ChainRecord.created_at).desc(), col(ChainRecord.id).desc())
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query).all())


@dataclass
class Stats:
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    durations: dict[str, float | int | None] = field(default_factory=dict)
    #: PENDING/RUNNING chains (counted there too) whose embedded runner died.
    orphaned: int = 0


def stats(*, session: Session) -> Stats:
    result = Stats(by_status={s.value: 0 for s in CHAIN_STATUSES})
    rows = session.exec(
        select(ChainRecord.type, ChainRecord.status, func.count()).group_by(
            col(ChainRecord.type), col(ChainRecord.status)
        )
    ).all()
    for type_, status, count in rows:
        result.total += count
        result.by_status[Status(status).value] = result.by_status.get(status, 0) + count
        per_type = result.by_type.setdefault(type_, {"total": 0})
        per_type["total"] += count
        per_type[Status(status).value] = count
    result.durations = _durations(session)
    result.orphaned = session.exec(
        select(func.count()).select_from(ChainRecord).where(_orphaned_clause(utcnow()))
    ).one()
    return result


def _durations(session: Session) -> dict[str, float | int | None]:
    """Min, mean, max and percentiles of finished chains' run time, in seconds."""
    finished = col(ChainRecord.finished_at).is_not(None) & col(ChainRecord.started_at).is_not(None)
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        seconds = (
            func.julianday(ChainRecord.finished_at) - func.julianday(ChainRecord.started_at)
        ) * 86400.0
    else:
        seconds = func.extract("epoch", col(ChainRecord.finished_at) - col(ChainRecord.started_at))
    count, low, mean, high = session.exec(
        select(func.count(), func.min(seconds), func.avg(seconds), func.max(seconds)).where(
            finished
        )
    ).one()
    out: dict[str, float | int | None] = {
        "count": int(count or 0),
        "min": _round(low),
        "mean": _round(mean),
        "max": _round(high),
    }
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        out[name] = None
        if count:
            # The k-th smallest value by ORDER BY/OFFSET: one row read, no loop over the table.
            k = min(int(count) - 1, max(0, round(q * (int(count) - 1))))
            value = session.exec(
                select(seconds).where(finished).order_by(seconds).offset(k).limit(1)
            ).first()
            out[name] = _round(value)
    return out


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def delete_chains(*, session: Session, chain_ids: Sequence[str]) -> int:
    session.execute(delete(StepRecord).where(col(StepRecord.chain_id).in_(list(chain_ids))))
    res = session.execute(delete(ChainRecord).where(col(ChainRecord.id).in_(list(chain_ids))))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def chain_status(*, session: Session, chain_id: str) -> Status | None:
    status = session.exec(select(ChainRecord.status).where(ChainRecord.id == chain_id)).first()
    return Status(status) if status is not None else None


def stale_steps(
    *, session: Session, now: datetime, pending_after: datetime, limit: int = 500
) -> list[tuple[str, int]]:
    """Steps whose message may be lost: RUNNING under an expired lease, or PENDING, next in
    line (its predecessor COMPLETED, or the first step) and sent before `pending_after`."""
    from sqlalchemy import and_, or_
    from sqlalchemy.orm import aliased

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
