"""Embedded mode: the submitting process runs its chains' steps itself, in one thread.

The step code and the records are the distributed ones: each step goes through
`runner.run_step` (claim, compute, record, under a lease), exactly as the Celery task body
does, and the next step is queued when it returns. What is left out is only the transport:
a Celery worker on the in-memory transport polls it (every 5 ms at best) and wraps each step
in a task request, which cost ~13 ms per step; a queue in memory costs microseconds.
Celery's retry of a step the store could not take (`tasks.run_step`) has its counterpart
here: the step is queued again after the same back-off. No Celery in here.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading

from taskchain.errors import StoreUnavailable

log = logging.getLogger(__name__)

#: As `tasks.MAX_STORE_RETRIES`: how often a step the store refused is tried again.
MAX_STORE_RETRIES = 10

_Item = tuple[str, int, int]  # chain id, step index, retries so far
_lock = threading.Lock()
_queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
_thread: tuple[int, threading.Thread] | None = None  # (pid, thread): a forked child starts its own


def ensure_worker() -> None:
    """Start (once per process) the thread that runs queued steps."""
    global _thread
    with _lock:
        if _thread is not None and _thread[0] == os.getpid() and _thread[1].is_alive():
            return
        thread = threading.Thread(target=_run, name="taskchain-embedded", daemon=True)
        _thread = (os.getpid(), thread)
        thread.start()


def send(chain_id: str, index: int) -> None:
    """Queue step `index` of a recorded chain to run in this process."""
    ensure_worker()
    _queue.put((chain_id, index, 0))


def worker_name() -> str:
    # Node name first, host after the @ (as Celery names workers): messages name both.
    return f"embedded-{os.getpid()}@{socket.gethostname()}"


def _run() -> None:
    from taskchain.engine import runner

    name = worker_name()
    while True:
        chain_id, index, retries = _queue.get()
        try:
            outcome = runner.run_step(chain_id, index, worker=name)
        except StoreUnavailable as exc:
            if retries >= MAX_STORE_RETRIES:
                log.error("step %s/%s not run: %s", chain_id, index, exc)
                continue
            _later(min(30.0, 2.0**retries), (chain_id, index, retries + 1))
            continue
        except Exception:  # the loop must outlive any one step (run_step records failures)
            log.exception("step %s/%s raised", chain_id, index)
            continue
        if isinstance(outcome, runner.Busy):
            # Held by a live lease elsewhere: look again when it would have expired.
            _later(outcome.seconds, (chain_id, index, retries))
        elif isinstance(outcome, runner.Next):
            _queue.put((chain_id, outcome.index, 0))
        elif not isinstance(outcome, runner.Ended) or outcome.job:
            # The chain may have ended as a job: its workflow's fan-in (as the Celery task does).
            from taskchain.engine import workflow

            workflow.after_step(chain_id, app=None)


def _later(seconds: float, item: _Item) -> None:
    timer = threading.Timer(seconds, _queue.put, args=(item,))
    timer.daemon = True
    timer.start()
