"""Run one step against the store: claim it, compute it, record it. No Celery in here."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from taskchain.chains import StepContext, StepPlan, get_type
from taskchain.errors import StepError, StoreUnavailable, TaskchainError
from taskchain.settings import get_settings
from taskchain.store import Status, queries, session
from taskchain.store.models import utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")
STORE_PATIENCE = 30.0


def with_store_retry(fn: Callable[[], T], *, patience: float = STORE_PATIENCE) -> T:
    """Run a store operation, retrying with backoff while the store is unavailable."""
    deadline = time.monotonic() + patience
    delay = 0.1
    while True:
        try:
            return fn()
        except StoreUnavailable:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("store unavailable; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def execute_step(chain_id: str, index: int, *, worker: str) -> int | None:
    """Run step `index` once; return the index of the step to send next, or None.

    Safe to call again for the same step (a redelivered message): a step already finished
    is not run twice, and a finished step that was not followed yet is followed now.
    """
    settings = get_settings()

    def claim() -> tuple[str, Any, StepPlan, Any, int] | int | None:
        with session(write=True) as s:
            chain = s.get(queries.ChainRecord, chain_id)
            step = queries.get_step(session=s, chain_id=chain_id, index=index)
            if chain is None or step is None or chain.status.finished or chain.cancel_requested:
                return None
            if step.status == Status.COMPLETED:
                return index + 1 if index + 1 < chain.step_count else None
            if step.status.finished:
                return None
            lease = utcnow() + timedelta(seconds=settings.step_lease)
            queries.start_step(
                session=s, chain_id=chain_id, index=index, worker=worker, lease_until=lease
            )
            previous = None
            if index > 0:
                before = queries.get_step(session=s, chain_id=chain_id, index=index - 1)
                previous = before.result if before else None
            plan = StepPlan(name=step.name, params=dict(step.params))
            return chain.type, chain.config, plan, previous, chain.step_count

    claimed = with_store_retry(claim)
    if claimed is None or isinstance(claimed, int):
        return claimed
    type_name, raw_config, plan, previous, step_count = claimed
    ctx = StepContext(
        chain_id=chain_id,
        index=index,
        step_count=step_count,
        workspace=settings.workspace,
        report=lambda message: _report(chain_id, index, message),
    )
    try:
        result = _compute(type_name, raw_config, plan, previous, ctx)
    except _StepFailed as failure:
        reason = str(failure)
        with_store_retry(lambda: _record_failure(chain_id, index, reason))
        return None
    last = index + 1 >= step_count

    def record() -> bool:
        with session(write=True) as s:
            return queries.complete_step(
                session=s, chain_id=chain_id, index=index, result=result, last=last
            )

    recorded = with_store_retry(record)
    return index + 1 if recorded and not last else None


class _StepFailed(Exception):
    pass


def _compute(type_name: str, raw: Any, plan: StepPlan, previous: Any, ctx: StepContext) -> Any:
    from celery.exceptions import SoftTimeLimitExceeded

    try:
        chain_type = get_type(type_name)
        config = chain_type.parse(raw)
        result = chain_type.run_step(config, plan, previous, ctx)
        json.dumps(result)
    except (StepError, TaskchainError) as exc:
        raise _StepFailed(str(exc)) from exc
    except SoftTimeLimitExceeded as exc:
        limit = get_settings().task_time_limit
        raise _StepFailed(f"step exceeded the time limit of {limit}s") from exc
    except (TypeError, ValueError) as exc:
        if "JSON serializable" in str(exc) or "Circular reference" in str(exc):
            raise _StepFailed(f"step returned a value that is not JSON: {exc}") from exc
        raise _StepFailed(f"{type(exc).__name__}: {exc}") from exc
    except StoreUnavailable:
        raise
    except Exception as exc:
        log.exception("step %s/%s raised", ctx.chain_id, ctx.index)
        raise _StepFailed(f"unexpected {type(exc).__name__}: {exc}") from exc
    return result


def _record_failure(chain_id: str, index: int, error: str) -> None:
    with session(write=True) as s:
        queries.fail_step(session=s, chain_id=chain_id, index=index, error=error)


def _report(chain_id: str, index: int, message: str) -> None:
    try:
        with session(write=True) as s:
            queries.set_progress(session=s, chain_id=chain_id, index=index, progress=message)
    except StoreUnavailable:
        log.warning("could not record progress of %s/%s", chain_id, index)
