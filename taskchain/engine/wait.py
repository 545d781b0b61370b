"""Follow a chain in the store until it finishes, with backoff over brief store outages."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from taskchain.core import Orphaned
from taskchain.engine import events
from taskchain.errors import ChainNotFound, StoreUnavailable, TimedOut
from taskchain.store import queries, session
from taskchain.store.queries import ChainView

OUTAGE_PATIENCE = 30.0
#: With change notifications, how often the store is still read (a lost message, a dead
#: runner's orphaned chain, a timeout): rarely, since every change is announced.
FALLBACK = 1.0


class Outage:
    """The one rule for a follower that loses the store (`watch`, `--wait`, a workflow's
    watch): an outage shorter than `patience` is waited out; a longer one gives up with the
    StoreUnavailable that ended it. `ok()` after every good read ends the outage."""

    def __init__(self, patience: float = OUTAGE_PATIENCE) -> None:
        self.patience = patience
        self.since: float | None = None

    def ok(self) -> None:
        self.since = None

    def failed(self, exc: StoreUnavailable) -> None:
        """Record a failed read; raise `exc` once the outage has lasted `patience`."""
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since > self.patience:
            raise exc


def read(chain_id: str) -> ChainView:
    with session() as s:
        return queries.get_chain(session=s, chain_id=chain_id)


def _read_chain(chain_id: str) -> ChainView:
    """The chain without its steps: a waiter that shows nothing needs only the chain's row,
    not a thousand steps' rows on every look."""
    with session() as s:
        chain = s.get(queries.ChainRecord, chain_id)
        if chain is None:
            raise ChainNotFound(chain_id)
        return ChainView(chain=chain, steps=[])


def follow(
    chain_id: str,
    *,
    timeout: float | None = None,
    on_change: Callable[[ChainView], None] | None = None,
    interval: float = 0.25,
    owner: bool = False,
) -> ChainView:
    """Follow the chain until it is finished; call `on_change` with every new state seen.

    Distributed on Redis, workers announce every change (`events`): the store is re-read as
    soon as one is announced, and otherwise only every FALLBACK seconds. Without a channel
    the store is polled with a backoff up to `interval`.

    Raises TimedOut after `timeout` seconds, and Orphaned once the chain's embedded runner
    has died (unless `owner`: this process is that runner, late renewing its lease, and the
    chain goes on here). A store that is unavailable for less than OUTAGE_PATIENCE seconds
    is waited out; longer, StoreUnavailable propagates.
    """
    pubsub = events.subscribe(chain_id)  # before the first read: no change slips between
    try:
        return _follow(chain_id, pubsub, timeout, on_change, interval, owner)
    finally:
        if pubsub is not None:
            _close(pubsub)


def _follow(
    chain_id: str,
    pubsub: Any,
    timeout: float | None,
    on_change: Callable[[ChainView], None] | None,
    interval: float,
    owner: bool,
) -> ChainView:
    start = time.monotonic()
    delay = 0.01
    last_seen: object = None
    outage = Outage()
    while True:
        try:
            read_at = time.monotonic()
            view = read(chain_id) if on_change is not None else _read_chain(chain_id)
            outage.ok()
        except StoreUnavailable as exc:
            outage.failed(exc)
            time.sleep(min(2.0, max(delay, 0.2)))
            delay = min(delay * 2, 2.0)
            continue
        fingerprint = _fingerprint(view)
        if fingerprint != last_seen:
            last_seen = fingerprint
            if on_change is not None:
                on_change(view)
        if view.chain.status.finished:
            return view if on_change is not None else read(chain_id)
        if not owner and queries.is_orphaned(view.chain):
            raise Orphaned(view.chain)
        elapsed = time.monotonic() - start
        if timeout is not None and elapsed >= timeout:
            raise TimedOut(chain_id, timeout)
        if pubsub is not None:
            left = FALLBACK if timeout is None else min(FALLBACK, timeout - elapsed)
            try:
                events.wait(pubsub, left, not_before=read_at + events.MIN_GAP)
                continue
            except Exception:  # the channel went away: poll the store from now on
                _close(pubsub)
                pubsub = None
        time.sleep(delay)
        delay = min(delay * 1.5, interval)


def _close(pubsub: Any) -> None:
    with contextlib.suppress(Exception):  # closing a dead connection may fail; nothing is lost
        pubsub.close()


def _fingerprint(view: ChainView) -> tuple[object, ...]:
    return (
        view.chain.status,
        queries.is_orphaned(view.chain),
        tuple((s.status, s.attempts, s.progress, s.error) for s in view.steps),
    )


class Announcements:
    """Every chain's change notifications at once (a Redis pattern subscription), for a
    follower of many chains: `watch` without an id, a workflow's watch. It says which chains
    changed; the store says how."""

    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub

    @classmethod
    def open(cls) -> Announcements | None:
        """Subscribed, or None when there is no channel (embedded, another broker, Redis
        unreachable): the caller then polls the store."""
        pubsub = events.listen(events.channel("*"), pattern=True)
        return None if pubsub is None else cls(pubsub)

    def wait(self, timeout: float, *, not_before: float = 0.0) -> set[str] | None:
        """The ids announced within `timeout` seconds (empty if none), taking every message
        until `not_before` (monotonic time) after the first, so that one look serves them
        all; None once the channel has failed (it is closed: poll from now on)."""
        deadline = time.monotonic() + timeout
        got: set[str] = set()
        try:
            while True:
                until = min(not_before, deadline) if got else deadline
                left = until - time.monotonic()
                if left <= 0:
                    return got
                message = self.pubsub.get_message(timeout=left)
                if message is None:
                    continue
                name = message["channel"]
                name = name.decode() if isinstance(name, bytes) else str(name)
                got.add(name.removeprefix(events.PREFIX))
        except Exception:
            self.close()
            return None

    def close(self) -> None:
        _close(self.pubsub)
