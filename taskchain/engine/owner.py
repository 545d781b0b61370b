"""Which process runs an embedded chain: a lease on the chain, renewed while that process lives.

In embedded mode no worker will ever pick a chain up: its steps run inside the command that
submitted (or retried) it. That command records itself as the chain's `runner` with a lease,
and one heartbeat thread per process renews the lease of every chain it runs. If the process
dies (SIGKILL, a closed laptop lid that never reopens), the lease expires and every reader
sees the chain as orphaned (`queries.is_orphaned`); `retry` takes it over. No Celery in here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta

from taskchain.settings import get_settings
from taskchain.store import session, transitions
from taskchain.store.models import utcnow

log = logging.getLogger(__name__)

_lock = threading.Lock()
_token: tuple[int, str] | None = None  # (pid, token): a forked child makes its own
_beating: threading.Thread | None = None
_beating_url = ""
_holds = 0  # bumped by every hold(), so the heartbeat never quits under a new chain


def token() -> str:
    """This process's runner token, `host:pid:nonce` (the nonce: pids are reused)."""
    global _token
    with _lock:
        if _token is None or _token[0] != os.getpid():
            _token = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
        return _token[1]


def lease_until() -> datetime:
    return utcnow() + timedelta(seconds=get_settings().step_lease)


def hold() -> None:
    """Call after recording a chain with `token()` as its runner: from now on its lease is
    renewed, with every other chain this process runs, until none is left."""
    global _beating, _beating_url, _holds
    runner, url = token(), get_settings().store_url
    with _lock:
        _holds += 1
        if _beating is None or _beating_url != url:
            _beating, _beating_url = (
                threading.Thread(
                    target=_beat, args=(runner, url), name="taskchain-runner-lease", daemon=True
                ),
                url,
            )
            _beating.start()


def _store_url() -> str | None:
    """The store the settings name now; None when they no longer validate (a test that
    configures bad settings in this process: the thread must stop, not raise)."""
    try:
        return get_settings().store_url
    except Exception:
        return None


def _beat(runner: str, store_url: str) -> None:
    lease = get_settings().step_lease
    while True:
        # A third of the lease: two beats may be missed (a busy store) before it expires.
        time.sleep(lease / 3)
        with _lock:
            seen = _holds
            if _store_url() != store_url:
                _stopped()  # the settings changed under us (tests): renew nothing elsewhere
                return
        try:
            with session(write=True) as s:
                held = transitions.renew_runner_lease(
                    session=s, runner=runner, lease_until=utcnow() + timedelta(seconds=lease)
                )
        except Exception as exc:  # a missed beat is survivable; the next one may land
            log.warning("could not renew the lease of this process's chains: %s", exc)
            continue
        with _lock:
            if not held and _holds == seen:
                _stopped()  # every chain it ran has finished (or a retry took it over)
                return


def _stopped() -> None:
    """Forget the heartbeat thread (called under the lock by that thread as it ends)."""
    global _beating
    if _beating is threading.current_thread():
        _beating = None
