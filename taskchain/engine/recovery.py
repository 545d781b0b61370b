"""Re-sending steps whose message was lost: a worker that died holding them, a broker that
restarted empty, a worker killed with messages prefetched. Every worker runs the sweep;
a duplicate message is harmless because a step is claimed (leased) before it runs."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from celery import Celery

from taskchain.engine.dispatch import send_step
from taskchain.errors import TaskchainError
from taskchain.settings import get_settings
from taskchain.store import queries, session, transitions
from taskchain.store.models import utcnow
from taskchain.store.prune import Timer, prune_if_due

log = logging.getLogger(__name__)


def pending_grace() -> float:
    """How long a sent step may wait in a queue before the sweep sends it again."""
    return get_settings().redispatch_after


def sweep(app: Celery) -> list[tuple[str, int]]:
    """Send again every stale step (see `queries.stale_steps`); return which."""
    now = utcnow()
    with session() as s:
        stale = queries.stale_steps(
            session=s, now=now, pending_after=now - timedelta(seconds=pending_grace())
        )
    for chain_id, index in stale:
        with session(write=True) as s:
            transitions.mark_dispatched(session=s, chain_id=chain_id, index=index)
        send_step(chain_id, index, app=app)
    if stale:
        log.warning("recovery: re-sent %d step(s) whose message was lost", len(stale))
    from taskchain.engine import workflow

    if workflow.sweep_stalled(app):  # a fan-in lost with a killed process
        log.warning("recovery: advanced workflows whose fan-in was lost")
    return stale


def start_sweeper(app: Celery) -> threading.Event:
    """Sweep now and then every third of a lease, in a daemon thread; set the event to stop.
    The same thread applies TASKCHAIN_RETENTION (see `store.prune`)."""
    stop = threading.Event()
    interval = max(2.0, get_settings().step_lease / 3)
    retention = Timer()  # TASKCHAIN_RETENTION: prune at start, then at most once an hour

    def loop() -> None:
        while True:
            try:
                sweep(app)
                prune_if_due(retention)
            except (TaskchainError, OSError) as exc:  # store or broker away: try next round
                log.warning("recovery sweep failed: %s", exc)
            except Exception:
                log.exception("recovery sweep failed")
            if stop.wait(interval):
                return

    threading.Thread(target=loop, name="taskchain-recovery", daemon=True).start()
    return stop
