"""The leases on running steps this process holds, renewed by one thread per process.

A step registers its lease while it computes (`held`) and unregisters when it returns:
two dictionary operations, no thread started, joined or woken per step. The thread sleeps
until the oldest registered lease has run a third of its length, then renews, in one UPDATE,
every lease that has; idle, it sleeps as long as a lease taken now would need, so a new
lease wakes it only if due before that (a shorter lease setting). A step that takes a
millisecond is never renewed at all; a long one is renewed every third of a lease, so two
missed beats (a busy store) still leave it held.
(`owner.py` keeps the same pattern for the leases of chains an embedded process runs.)
No Celery in here.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from taskchain.settings import get_settings
from taskchain.store import transitions
from taskchain.store.db import transaction
from taskchain.store.models import utcnow

log = logging.getLogger(__name__)


@dataclass
class _Lease:
    chain_id: str
    index: int
    seconds: int
    renew_at: float  # time.monotonic() when a third of the lease has run


_lock = threading.Lock()
_held: dict[str, _Lease] = {}  # by the claim's token, unique to one execution of a step
_wake = threading.Event()
_wake_at = math.inf  # time.monotonic() when the thread wakes next by itself (under _lock)
_thread: tuple[int, threading.Thread] | None = None  # (pid, thread): a forked child starts its own


@contextmanager
def held(chain_id: str, index: int, token: str) -> Iterator[None]:
    """Keep the lease `token` holds on step `index` renewed until the block ends."""
    seconds = get_settings().step_lease
    lease = _Lease(chain_id, index, seconds, time.monotonic() + seconds / 3)
    with _lock:
        _held[token] = lease
        _ensure_thread()
        early = lease.renew_at < _wake_at
    if early:
        _wake.set()  # the thread would sleep past this lease's renewal
    try:
        yield
    finally:
        with _lock:
            _held.pop(token, None)


def holding() -> int:
    """How many step leases this process is renewing now."""
    with _lock:
        return len(_held)


def _ensure_thread() -> None:
    global _thread
    if _thread is not None and _thread[0] == os.getpid() and _thread[1].is_alive():
        return
    thread = threading.Thread(target=_run, name="taskchain-step-leases", daemon=True)
    _thread = (os.getpid(), thread)
    thread.start()


def _run() -> None:
    global _wake_at
    while True:
        # Idle, it wakes when a lease taken now would be due: a step that starts before then
        # need not wake it (one that does, under a shorter lease setting, wakes it itself).
        idle = time.monotonic() + get_settings().step_lease / 3
        with _lock:
            _wake_at = min((lease.renew_at for lease in _held.values()), default=idle)
        _wake.wait(max(0.0, _wake_at - time.monotonic()))
        _wake.clear()
        now = time.monotonic()
        with _lock:
            due = {token: lease for token, lease in _held.items() if lease.renew_at <= now}
        if due:
            _renew(due)


def _renew(due: dict[str, _Lease]) -> None:
    try:
        # One expiry for all (they share the setting; a shorter one if it changed between).
        seconds = min(lease.seconds for lease in due.values())
        with transaction(write=True) as conn:
            transitions.renew_leases(
                conn,
                held=[(lease.chain_id, lease.index, token) for token, lease in due.items()],
                lease_until=utcnow() + timedelta(seconds=seconds),
            )
    except Exception as exc:  # a missed beat is survivable; the next one may land
        log.warning("lease renewal of %d running step(s) failed: %s", len(due), exc)
        with _lock:
            for lease in due.values():
                lease.renew_at = time.monotonic() + lease.seconds / 6
        return
    with _lock:
        for lease in due.values():
            lease.renew_at = time.monotonic() + lease.seconds / 3
