"""Status changes. Each is a conditional UPDATE, so a status only moves forward and a step
is held by one worker at a time: a claim is a lease (`worker` token + expiry) that its holder
renews while the step runs and that another worker may take over only once it has expired.
`reopen_chain` (retry) is the one deliberate way back, and it says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, or_, select, update
from sqlmodel import Session, col

from taskchain.store.db import Prepared
from taskchain.store.models import (
    FINISHED,
    ChainRecord,
    JsonText,
    Status,
    StepRecord,
    UTCDateTime,
    utcnow,
)


def _step(chain_id: str, index: int) -> Any:
    return update(StepRecord).where(
        col(StepRecord.chain_id) == chain_id, col(StepRecord.index) == index
    )


def _changed(result: Any) -> bool:
    return bool(result.rowcount)


# The hot path (a step's claim and record) runs statements built once, here, with bound
# parameters: SQLAlchemy then compiles each once per engine and reuses it on every step.
STEP: Table = StepRecord.__table__
CHAIN: Table = ChainRecord.__table__
_NOW = bindparam("p_now", type_=UTCDateTime())
_LEASE = bindparam("p_lease_until", type_=UTCDateTime())
_THIS_STEP = and_(STEP.c.chain_id == bindparam("p_chain_id"), STEP.c.index == bindparam("p_index"))
_HELD = and_(STEP.c.status == Status.RUNNING, STEP.c.worker == bindparam("p_token"))
_CLAIMABLE = or_(
    STEP.c.status == Status.PENDING,
    and_(
        STEP.c.status == Status.RUNNING,
        or_(STEP.c.lease_expires_at.is_(None), STEP.c.lease_expires_at < _NOW),
    ),
)
_CLAIM_VALUES = {
    "status": Status.RUNNING,
    "attempts": STEP.c.attempts + 1,
    "started_at": func.coalesce(STEP.c.started_at, _NOW),
    "worker": bindparam("p_token"),
    "lease_expires_at": _LEASE,
    "error": None,
    "progress": None,
}
_CLAIM = update(STEP).where(_THIS_STEP, _CLAIMABLE).values(_CLAIM_VALUES)
_START_CHAIN = (
    update(CHAIN)
    .where(CHAIN.c.id == bindparam("p_chain_id"), CHAIN.c.status == Status.PENDING)
    .values(status=Status.RUNNING, started_at=_NOW)
)
_RESULT = bindparam("p_result", type_=JsonText())
_COMPLETE = (
    update(STEP)
    .where(_THIS_STEP, _HELD)
    .values(status=Status.COMPLETED, finished_at=_NOW, result=_RESULT, lease_expires_at=None)
)
_COMPLETE_CHAIN = (
    update(CHAIN)
    .where(CHAIN.c.id == bindparam("p_chain_id"), CHAIN.c.status == Status.RUNNING)
    .values(status=Status.COMPLETED, finished_at=_NOW, result=_RESULT)
)
_DISPATCH_NEXT = (
    update(STEP)
    .where(STEP.c.chain_id == bindparam("p_chain_id"), STEP.c.index == bindparam("p_next_index"))
    .values(dispatched_at=_NOW)
    .returning(STEP.c.queue, STEP.c.task_id, STEP.c.name)
)


def _claim_and_read(check_runner: bool) -> Any:
    """The whole claim in one statement: the step goes RUNNING under the caller's lease, and
    what the step needs comes back with it (subqueries in RETURNING, by bound keys, which
    SQLite >= 3.35 and PostgreSQL both accept). Only the plain case matches: a live chain,
    not cancelled, in this workspace (and, embedded, run by this process), a step under
    MAX attempts; anything else is left to the careful path (`runner._claim_slowly`)."""
    chain = select(CHAIN).where(CHAIN.c.id == bindparam("p_chain_id"))
    live = chain.where(
        or_(CHAIN.c.status == Status.PENDING, CHAIN.c.status == Status.RUNNING),
        CHAIN.c.cancel_requested.is_(False),
        or_(CHAIN.c.workspace.is_(None), CHAIN.c.workspace == bindparam("p_workspace")),
    )
    if check_runner:
        live = live.where(or_(CHAIN.c.runner.is_(None), CHAIN.c.runner == bindparam("p_runner")))
    prev = STEP.alias("prev")
    previous = select(prev.c.result).where(
        prev.c.chain_id == bindparam("p_chain_id"), prev.c.index == bindparam("p_prev_index")
    )

    def of_chain(column: Any) -> Any:
        return chain.with_only_columns(column).scalar_subquery().label(column.name)

    return (
        update(STEP)
        .where(_THIS_STEP, _CLAIMABLE, STEP.c.attempts < bindparam("p_max_attempts"))
        .where(live.exists())
        .values(_CLAIM_VALUES)
        .returning(
            STEP.c.name,
            STEP.c.params,
            of_chain(CHAIN.c.type),
            of_chain(CHAIN.c.config),
            of_chain(CHAIN.c.step_count),
            of_chain(CHAIN.c.status),
            of_chain(CHAIN.c.workflow_id),
            previous.scalar_subquery().label("previous"),
        )
    )


_CLAIM_AND_READ = {flag: Prepared(_claim_and_read(flag)) for flag in (False, True)}
# The claim's and the record's statements, run without SQLAlchemy's per-call work on the
# drivers `db.Prepared` knows (sqlite3, psycopg).
_HOT_START_CHAIN = Prepared(_START_CHAIN)
_HOT_COMPLETE = Prepared(_COMPLETE)
_HOT_COMPLETE_CHAIN = Prepared(_COMPLETE_CHAIN)
_HOT_DISPATCH_NEXT = Prepared(_DISPATCH_NEXT)


@dataclass(frozen=True)
class Claimed:
    """What a step needs to run, read in the statement that claimed it."""

    name: str
    params: dict[str, Any]
    type: str
    config: Any
    step_count: int
    previous: Any
    #: The workflow the chain is a job of; "?" when not read (the careful path).
    workflow_id: str | None = "?"


def claim_and_read(
    conn: Connection,
    *,
    chain_id: str,
    index: int,
    token: str,
    lease_until: datetime,
    workspace: str,
    max_attempts: int,
    runner: str | None = None,
) -> Claimed | None:
    """Claim step `index` in the plain case, in one statement (two on a chain's first step);
    None when the step is not plainly claimable (see `_claim_and_read`) or the database
    lacks UPDATE ... RETURNING. Holds the same lease rules as `claim_step`."""
    if not conn.dialect.update_returning:
        return None
    now = utcnow()
    row = _CLAIM_AND_READ[runner is not None].first(
        conn,
        {
            "p_chain_id": chain_id, "p_index": index, "p_prev_index": index - 1, "p_token": token,
            "p_now": now, "p_lease_until": lease_until, "p_workspace": workspace,
            "p_max_attempts": max_attempts, "p_runner": runner,
        },
    )  # fmt: skip
    if row is None:
        return None
    name, params, chain_type, config, step_count, status, workflow_id, previous = row
    if status == Status.PENDING:  # the chain's first step to run: the chain starts now
        _HOT_START_CHAIN.rowcount(conn, {"p_chain_id": chain_id, "p_now": now})
    return Claimed(
        name, params, chain_type, config, step_count, previous if index else None, workflow_id
    )


def claim_step(
    *, session: Session, chain_id: str, index: int, token: str, lease_until: datetime
) -> bool:
    """PENDING, or RUNNING under an expired lease, -> RUNNING held by `token`; counts an attempt."""
    now = utcnow()
    conn = session.connection()
    params = {"p_chain_id": chain_id, "p_index": index, "p_token": token, "p_now": now}
    if not _changed(conn.execute(_CLAIM, {**params, "p_lease_until": lease_until})):
        return False
    conn.execute(_START_CHAIN, params)
    return True


def renew_lease(
    *, session: Session, chain_id: str, index: int, token: str, lease_until: datetime
) -> bool:
    res = session.execute(
        _step(chain_id, index)
        .where(col(StepRecord.status) == Status.RUNNING, col(StepRecord.worker) == token)
        .values(lease_expires_at=lease_until)
    )
    return _changed(res)


def renew_leases(
    conn: Connection, *, held: Sequence[tuple[str, int, str]], lease_until: datetime
) -> int:
    """Extend, in one UPDATE, the leases of the steps (chain_id, index, token) still held by
    those tokens; return how many were. (Built per call: a renewal is rare, see leases.py.)"""
    if not held:
        return 0
    mine = or_(
        *(
            and_(STEP.c.chain_id == chain_id, STEP.c.index == index, STEP.c.worker == token)
            for chain_id, index, token in held
        )
    )
    res = conn.execute(
        update(STEP)
        .where(STEP.c.status == Status.RUNNING, mine)
        .values(lease_expires_at=lease_until)
    )
    return int(res.rowcount or 0)


@dataclass(frozen=True)
class Recorded:
    """A step's result was recorded; `next` is (queue, task_id, name) of the step to send now."""

    next: tuple[str, str, str] | None


def record_result(
    conn: Connection, *, chain_id: str, index: int, token: str, result: Any, last: bool
) -> Recorded | None:
    """Record the holder's result (a worker whose lease was taken over records nothing, None)
    and, in the same transaction, the chain's end or the next step's dispatch time."""
    params = {
        "p_chain_id": chain_id, "p_index": index, "p_token": token, "p_now": utcnow(),
        "p_result": result, "p_next_index": index + 1,
    }  # fmt: skip
    if not _HOT_COMPLETE.rowcount(conn, params):
        return None
    if last:
        _HOT_COMPLETE_CHAIN.rowcount(conn, params)
        return Recorded(None)
    row = _HOT_DISPATCH_NEXT.first(conn, params)
    return Recorded((row[0], row[1], row[2]) if row is not None else None)


def complete_step(
    *, session: Session, chain_id: str, index: int, token: str, result: Any, last: bool
) -> bool:
    """Record the holder's result (a worker whose lease was taken over records nothing)."""
    conn = session.connection()
    recorded = record_result(
        conn, chain_id=chain_id, index=index, token=token, result=result, last=last
    )
    return recorded is not None


def fail_step(
    *, session: Session, chain_id: str, index: int, error: str, token: str | None = None
) -> bool:
    """The step FAILED, the steps after it SKIPPED, the chain FAILED: one transaction."""
    now = utcnow()
    query = _step(chain_id, index).where(
        col(StepRecord.status).in_([Status.PENDING, Status.RUNNING])
    )
    if token is not None:
        query = query.where(col(StepRecord.worker) == token)
    res = session.execute(
        query.values(status=Status.FAILED, finished_at=now, error=error, lease_expires_at=None)
    )
    if not _changed(res):
        return False
    session.execute(
        update(StepRecord)
        .where(col(StepRecord.chain_id) == chain_id, col(StepRecord.index) > index)
        .where(col(StepRecord.status).notin_(list(FINISHED)))
        .values(status=Status.SKIPPED)
    )
    step = session.get(StepRecord, (chain_id, index))
    name = step.name if step else "?"
    session.execute(
        update(ChainRecord)
        .where(col(ChainRecord.id) == chain_id)
        .where(col(ChainRecord.status).in_([Status.PENDING, Status.RUNNING]))
        .values(
            status=Status.FAILED,
            finished_at=now,
            error=f"step {index + 1} ({name}) failed: {error}",
            started_at=func.coalesce(ChainRecord.started_at, now),
        )
    )
    return True


def set_progress(*, session: Session, chain_id: str, index: int, token: str, progress: str) -> None:
    session.execute(
        _step(chain_id, index)
        .where(col(StepRecord.status) == Status.RUNNING, col(StepRecord.worker) == token)
        .values(progress=progress)
    )


def mark_dispatched(*, session: Session, chain_id: str, index: int) -> None:
    session.execute(_step(chain_id, index).values(dispatched_at=utcnow()))


def cancel_chain(*, session: Session, chain_id: str, reason: str = "cancelled") -> bool:
    """Stop a chain: its running step CANCELLED, pending ones SKIPPED, the chain CANCELLED."""
    now = utcnow()
    res = session.execute(
        update(ChainRecord)
        .where(col(ChainRecord.id) == chain_id)
        .where(col(ChainRecord.status).in_([Status.PENDING, Status.RUNNING]))
        .values(status=Status.CANCELLED, finished_at=now, error=reason, cancel_requested=True)
    )
    if not _changed(res):
        return False
    for before, after in ((Status.RUNNING, Status.CANCELLED), (Status.PENDING, Status.SKIPPED)):
        session.execute(
            update(StepRecord)
            .where(col(StepRecord.chain_id) == chain_id, col(StepRecord.status) == before)
            .values(status=after, finished_at=now, lease_expires_at=None)
        )
    return True


def renew_runner_lease(*, session: Session, runner: str, lease_until: datetime) -> int:
    """Extend the lease of every unfinished chain `runner` (an embedded process) holds."""
    res = session.execute(
        update(ChainRecord)
        .where(col(ChainRecord.runner) == runner)
        .where(col(ChainRecord.status).in_([Status.PENDING, Status.RUNNING]))
        .values(runner_lease_expires_at=lease_until)
    )
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def reopen_chain(
    *,
    session: Session,
    chain_id: str,
    new_task_ids: dict[int, str],
    runner: str | None = None,
    runner_lease_until: datetime | None = None,
) -> int | None:
    """Retry: a FAILED or CANCELLED chain, or an orphaned one (PENDING/RUNNING under an
    embedded runner whose lease expired), runs again from its first unfinished step.

    Completed steps keep their results; the others go back to PENDING with fresh task ids
    (a revoked id would be dropped by workers) and no holder, so a dead runner's late
    writes match nothing. `runner` is the embedded process that now runs it (None: workers).
    Returns that step's index, or None when the chain is in none of those states.
    """
    now = utcnow()
    orphaned = and_(
        col(ChainRecord.status).in_([Status.PENDING, Status.RUNNING]),
        col(ChainRecord.runner).is_not(None),
        col(ChainRecord.runner_lease_expires_at) < now,
    )
    res = session.execute(
        update(ChainRecord)
        .where(col(ChainRecord.id) == chain_id)
        .where(or_(col(ChainRecord.status).in_([Status.FAILED, Status.CANCELLED]), orphaned))
        .values(
            status=Status.RUNNING,
            finished_at=None,
            error=None,
            result=None,
            cancel_requested=False,
            attempt=ChainRecord.attempt + 1,
            runner=runner,
            runner_lease_expires_at=runner_lease_until,
        )
    )
    if not _changed(res):
        return None
    first = min(new_task_ids)
    for index, task_id in new_task_ids.items():
        session.execute(
            _step(chain_id, index).values(
                status=Status.PENDING, task_id=task_id, error=None, result=None,
                started_at=None, finished_at=None, lease_expires_at=None, worker=None,
                progress=None, dispatched_at=now if index == first else None,
            )
        )  # fmt: skip
    return first
