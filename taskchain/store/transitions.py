"""Status changes. Each is a conditional UPDATE, so a status only moves forward and a step
is held by one worker at a time: a claim is a lease (`worker` token + expiry) that its holder
renews while the step runs and that another worker may take over only once it has expired.
`reopen_chain` (retry) is the one deliberate way back, and it says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlmodel import Session, col

from taskchain.store.models import FINISHED, ChainRecord, Status, StepRecord, utcnow


def _step(chain_id: str, index: int) -> Any:
    return update(StepRecord).where(
        col(StepRecord.chain_id) == chain_id, col(StepRecord.index) == index
    )


def _changed(result: Any) -> bool:
    return bool(result.rowcount)


def claim_step(
    *, session: Session, chain_id: str, index: int, token: str, lease_until: datetime
) -> bool:
    """PENDING, or RUNNING under an expired lease, -> RUNNING held by `token`; counts an attempt."""
    now = utcnow()
    claimable = or_(
        col(StepRecord.status) == Status.PENDING,
        and_(
            col(StepRecord.status) == Status.RUNNING,
            or_(col(StepRecord.lease_expires_at).is_(None), col(StepRecord.lease_expires_at) < now),
        ),
    )
    res = session.execute(
        _step(chain_id, index)
        .where(claimable)
        .values(
            status=Status.RUNNING,
            attempts=StepRecord.attempts + 1,
            started_at=func.coalesce(StepRecord.started_at, now),
            worker=token,
            lease_expires_at=lease_until,
            error=None,
            progress=None,
        )
    )
    if not _changed(res):
        return False
    session.execute(
        update(ChainRecord)
        .where(col(ChainRecord.id) == chain_id, col(ChainRecord.status) == Status.PENDING)
        .values(status=Status.RUNNING, started_at=now)
    )
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


def complete_step(
    *, session: Session, chain_id: str, index: int, token: str, result: Any, last: bool
) -> bool:
    """Record the holder's result (a worker whose lease was taken over records nothing)."""
    now = utcnow()
    res = session.execute(
        _step(chain_id, index)
        .where(col(StepRecord.status) == Status.RUNNING, col(StepRecord.worker) == token)
        .values(status=Status.COMPLETED, finished_at=now, result=result, lease_expires_at=None)
    )
    if not _changed(res):
        return False
    if last:
        session.execute(
            update(ChainRecord)
            .where(col(ChainRecord.id) == chain_id, col(ChainRecord.status) == Status.RUNNING)
            .values(status=Status.COMPLETED, finished_at=now, result=result)
        )
    else:
        session.execute(_step(chain_id, index + 1).values(dispatched_at=now))
    return True


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
