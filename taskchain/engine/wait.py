"""Follow a chain in the store until it finishes, with backoff over brief store outages."""

from __future__ import annotations

import time
from collections.abc import Callable

from taskchain.core import Orphaned
from taskchain.errors import StoreUnavailable, TimedOut
from taskchain.store import queries, session
from taskchain.store.queries import ChainView

OUTAGE_PATIENCE = 30.0


def read(chain_id: str) -> ChainView:
    with session() as s:
        return queries.get_chain(session=s, chain_id=chain_id)


def follow(
    chain_id: str,
    *,
    timeout: float | None = None,
    on_change: Callable[[ChainView], None] | None = None,
    interval: float = 0.25,
    owner: bool = False,
) -> ChainView:
    """Poll until the chain is finished; call `on_change` with every new state seen.

    Raises TimedOut after `timeout` seconds, and Orphaned once the chain's embedded runner
    has died (unless `owner`: this process is that runner, late renewing its lease, and the
    chain goes on here). A store that is unavailable for less than OUTAGE_PATIENCE seconds
    is waited out; longer, StoreUnavailable propagates.
    """
    start = time.monotonic()
    delay = 0.01
    last_seen: object = None
    outage_since: float | None = None
    while True:
        try:
            view = read(chain_id)
            outage_since = None
        except StoreUnavailable:
            now = time.monotonic()
            outage_since = outage_since or now
            if now - outage_since > OUTAGE_PATIENCE:
                raise
            time.sleep(min(2.0, max(delay, 0.2)))
            delay = min(delay * 2, 2.0)
            continue
        fingerprint = _fingerprint(view)
        if fingerprint != last_seen:
            last_seen = fingerprint
            if on_change is not None:
                on_change(view)
        if view.chain.status.finished:
            return view
        if not owner and queries.is_orphaned(view.chain):
            raise Orphaned(view.chain)
        if timeout is not None and time.monotonic() - start >= timeout:
            raise TimedOut(chain_id, timeout)
        time.sleep(delay)
        delay = min(delay * 1.5, interval)


def _fingerprint(view: ChainView) -> tuple[object, ...]:
    return (
        view.chain.status,
        queries.is_orphaned(view.chain),
        tuple((s.status, s.attempts, s.progress, s.error) for s in view.steps),
    )
