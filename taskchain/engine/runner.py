"""Run one step against the store: claim it, compute it, record it. No Celery in here.

A claim is a lease held by a token unique to this execution. While the step computes, the
process's lease thread (leases.py) renews it; if the worker dies, the lease expires and
another worker may take the step over. Only the lease holder records the outcome, so a
step is recorded once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from taskchain.chains import StepContext, StepPlan, get_type
from taskchain.engine import events, leases, owner
from taskchain.engine.queues import step_task_name
from taskchain.engine.submit import workspace_mismatch
from taskchain.errors import StepError, StoreUnavailable, TaskchainError
from taskchain.settings import get_settings
from taskchain.store import Status, queries, session, transitions
from taskchain.store.db import transaction
from taskchain.store.models import utcnow
from taskchain.store.transitions import Claimed

log = logging.getLogger(__name__)
T = TypeVar("T")
STORE_PATIENCE = 30.0
#: A step whose worker died this many times (killed, hard time limit) is failed, not retried.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Busy:
    """Another live worker holds the step; look again after `seconds`."""

    seconds: float


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


@dataclass(frozen=True)
class Next:
    """Send step `index` now, under `task_id` on `queue` (as recorded); `shadow` is the name
    Celery's tools show for it (`math_chain.add`)."""

    index: int
    queue: str
    task_id: str
    shadow: str


@dataclass(frozen=True)
class Failed:
    """The step was recorded FAILED for `reason` (the Celery task then reports FAILURE)."""

    reason: str


@dataclass(frozen=True)
class Ended:
    """The step ended its chain; `job`: the chain may be a workflow's job, whose fan-in
    the caller runs (False only when the claim read that it is not)."""

    job: bool


Step = Next | Busy | Failed | Ended | None  # what `run_step` asks its caller to do
Outcome = int | Busy | Failed | None  # `execute_step`: the next step's index instead of Next


def execute_step(chain_id: str, index: int, *, worker: str) -> Outcome:
    """Run step `index` once; return the index of the next step to send, Busy, or None."""
    outcome = run_step(chain_id, index, worker=worker)
    if isinstance(outcome, Ended):
        return None
    return outcome.index if isinstance(outcome, Next) else outcome


def run_step(
    chain_id: str, index: int, *, worker: str, send: Callable[[Next], None] | None = None
) -> Step:
    """Run step `index` once; return what to do next (see `Step`). With `send`, a next step
    is sent through it before the step's completion is announced (`events.publish`), so the
    chain goes on first; the Next returned has then been sent.

    Safe to call again for the same step (a redelivered message): a finished step is not run
    again, and a finished step that was not followed yet is followed now.

    Two short write transactions in the common case: the claim, one UPDATE ... RETURNING
    that also reads what the step needs, and the record, which also marks the next step
    sent and returns its queue and task id. Anything unusual (a step held by another
    worker, finished, over its attempts, a chain cancelled or in another workspace) takes
    the careful path, `_claim_slowly`, which reads first and decides.
    """
    settings = get_settings()
    token = f"{worker}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def claim() -> Claimed | Step:
        lease = utcnow() + timedelta(seconds=settings.step_lease)
        with transaction(write=True) as conn:
            claimed = transitions.claim_and_read(
                conn, chain_id=chain_id, index=index, token=token, lease_until=lease,
                workspace=_workspace(settings.workspace), max_attempts=MAX_ATTEMPTS,
                runner=owner.token() if settings.embedded else None,
            )  # fmt: skip
        return claimed if claimed is not None else _claim_slowly(chain_id, index, token, worker)

    claimed = with_store_retry(claim)
    if not isinstance(claimed, Claimed):
        return claimed
    events.publish(chain_id, f"{index}:RUNNING")
    ctx = StepContext(
        chain_id=chain_id,
        index=index,
        step_count=claimed.step_count,
        workspace=settings.workspace,
        report=lambda message: _report(chain_id, index, token, message),
    )
    try:
        with leases.held(chain_id, index, token):
            result = _compute(claimed, ctx)
    except _StepFailed as failure:
        reason = str(failure)
        with_store_retry(lambda: _record_failure(chain_id, index, token, reason))
        events.publish(chain_id, f"{index}:{events.END}")  # a failed step ends its chain
        return Failed(reason)
    last = index + 1 >= claimed.step_count

    def record() -> transitions.Recorded | None:
        with transaction(write=True) as conn:
            return transitions.record_result(
                conn, chain_id=chain_id, index=index, token=token, result=result, last=last
            )

    recorded = with_store_retry(record)
    done = f"{index}:{events.END if last else 'COMPLETED'}"
    if recorded is None or recorded.next is None:
        events.publish(chain_id, done)
        if recorded is not None and last:
            return Ended(job=claimed.workflow_id is not None)
        return None
    queue, task_id, name = recorded.next
    following = Next(index + 1, queue, task_id, step_task_name(claimed.type, name))
    if send is None:
        events.publish(chain_id, done)
        return following
    try:
        send(following)
    finally:
        events.publish(chain_id, done)
    return following


_workspaces: dict[Path, str] = {}


def _workspace(folder: Path) -> str:
    """The resolved workspace as chains record it (resolved once: it is a system call)."""
    resolved = _workspaces.get(folder)
    if resolved is None:
        resolved = _workspaces[folder] = str(folder.resolve())
    return resolved


def _claim_slowly(chain_id: str, index: int, token: str, worker: str) -> Claimed | Step:
    """The claim for every case that is not plain: read the chain and the step, then decide."""
    settings = get_settings()
    with session(write=True) as s:
        chain = s.get(queries.ChainRecord, chain_id)
        step = queries.get_step(session=s, chain_id=chain_id, index=index)
        if chain is None or step is None or chain.status.finished or chain.cancel_requested:
            return None
        if step.status == Status.COMPLETED:
            return _follow_on(s, chain_id, index, chain.step_count, chain.type)
        if step.status.finished:
            return None
        if settings.embedded and chain.runner not in (None, owner.token()):
            return None  # a retry elsewhere took this chain over from this process
        mismatch = workspace_mismatch(chain, settings.workspace, who=_who(worker))
        if mismatch and _claimable(step):
            transitions.fail_step(session=s, chain_id=chain_id, index=index, error=mismatch)
            return Failed(mismatch)
        if step.attempts >= MAX_ATTEMPTS and _claimable(step):
            lost = f"gave up after {step.attempts} attempts (its worker was lost each time)"
            transitions.fail_step(session=s, chain_id=chain_id, index=index, error=lost)
            return Failed(lost)
        lease = utcnow() + timedelta(seconds=settings.step_lease)
        if not transitions.claim_step(
            session=s, chain_id=chain_id, index=index, token=token, lease_until=lease
        ):
            remaining = (step.lease_expires_at or utcnow()) - utcnow()
            return Busy(max(1.0, remaining.total_seconds() + 1.0))
        previous = None
        if index > 0:
            before = queries.get_step(session=s, chain_id=chain_id, index=index - 1)
            previous = before.result if before else None
        return Claimed(
            step.name, dict(step.params), chain.type, chain.config, chain.step_count, previous
        )


def _who(worker: str) -> str:
    """`worker w1@host`: Celery's node name, with this host added when the name lacks it."""
    host = socket.gethostname()
    return f"worker {worker}" if worker.endswith(f"@{host}") else f"worker {worker} on {host}"


def _claimable(step: queries.StepRecord) -> bool:
    return step.status == Status.PENDING or (
        step.lease_expires_at is None or step.lease_expires_at < utcnow()
    )


def _follow_on(s: Any, chain_id: str, index: int, step_count: int, chain_type: str) -> Next | None:
    """After a finished step: the next one, if it still waits for its message."""
    if index + 1 >= step_count:
        return None
    nxt = queries.get_step(session=s, chain_id=chain_id, index=index + 1)
    if nxt is None or nxt.status != Status.PENDING:
        return None
    return Next(index + 1, nxt.queue, nxt.task_id, step_task_name(chain_type, nxt.name))


class _StepFailed(Exception):
    pass


_configs: dict[str, tuple[Any, Any]] = {}  # chain id -> (raw config, parsed config)
_CONFIGS_KEPT = 64


def _parsed_config(chain_id: str, chain_type: Any, raw: Any) -> Any:
    """The chain's config, validated once per chain in this process, not once per step: a
    long chain's config is long (`--numbers` with 1,001 values), and validating it on every
    step made the chain quadratic. Compared by value, as a deleted chain's id may come back
    with another config."""
    cached = _configs.get(chain_id)
    if cached is not None and cached[0] == raw:
        return cached[1]
    parsed = chain_type.parse(raw)
    if len(_configs) >= _CONFIGS_KEPT:
        _configs.pop(next(iter(_configs)))
    _configs[chain_id] = (raw, parsed)
    return parsed


class _NeverRaised(Exception):
    """Stands for Celery's soft time limit where Celery is not loaded (embedded mode)."""


def _soft_time_limit() -> type[BaseException]:
    """Celery's SoftTimeLimitExceeded inside a worker; embedded, where nothing raises it, a
    class nothing raises, so that running a step imports no Celery (~0.1 s of start-up)."""
    module = sys.modules.get("celery.exceptions")
    return module.SoftTimeLimitExceeded if module is not None else _NeverRaised


def _compute(claim: Claimed, ctx: StepContext) -> Any:
    try:
        chain_type = get_type(claim.type)
        config = _parsed_config(ctx.chain_id, chain_type, claim.config)
        plan = StepPlan(name=claim.name, params=dict(claim.params))
        result = chain_type.run_step(config, plan, claim.previous, ctx)
        json.dumps(result)
    except (StepError, TaskchainError) as exc:
        raise _StepFailed(str(exc)) from exc
    except _soft_time_limit() as exc:
        limit = get_settings().task_time_limit
        raise _StepFailed(f"step exceeded the time limit of {limit}s") from exc
    except (TypeError, ValueError) as exc:
        if "JSON serializable" in str(exc) or "Circular reference" in str(exc):
            raise _StepFailed(f"step returned a value that is not JSON: {exc}") from exc
        raise _StepFailed(f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        log.exception("step %s/%s raised", ctx.chain_id, ctx.index)
        raise _StepFailed(f"unexpected {type(exc).__name__}: {exc}") from exc
    return result


def _record_failure(chain_id: str, index: int, token: str, error: str) -> None:
    with session(write=True) as s:
        transitions.fail_step(session=s, chain_id=chain_id, index=index, error=error, token=token)


def _report(chain_id: str, index: int, token: str, message: str) -> None:
    try:
        with session(write=True) as s:
            transitions.set_progress(
                session=s, chain_id=chain_id, index=index, token=token, progress=message
            )
    except StoreUnavailable:
        log.warning("could not record progress of %s/%s", chain_id, index)
