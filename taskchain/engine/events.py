"""Step-change notifications, so that waiters wake at once instead of polling the store.

After a worker records a change of a chain (a step claimed, a step finished), it publishes a
tiny message on the Redis channel `taskchain.events.<chain_id>` when the broker is Redis
(embedded, to waiters in the same process, through a queue in memory); `wait.follow`
subscribes and re-reads the store when a message arrives. The store stays the record: a
message only says "look now". A lost message (no Redis, a blip) costs only latency, because
a waiter still polls, less often. The message is `<index>:<what>`; `END` means the chain
finished, which a waiter reads at once; other changes it reads at most every MIN_GAP
seconds, so that a chain of a thousand millisecond steps is not re-read a thousand times.
No Celery in here.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from typing import Any

from taskchain.settings import get_settings, mask_url

log = logging.getLogger(__name__)

PREFIX = "taskchain.events."
#: After a failed publish, how long a process stays quiet before it tries again.
BACKOFF = 5.0
#: Redis answers a PUBLISH in well under a millisecond; a step must never wait long on it.
SOCKET_TIMEOUT = 0.5
#: Seconds a new subscription waits for the server to confirm it (then: polling).
CONFIRM_TIMEOUT = 2.0
MIN_GAP = 0.05
END = "END"

_lock = threading.Lock()
_clients: dict[tuple[int, str], Any] = {}  # (pid, url) -> redis client; a fork makes its own
_quiet_until = 0.0


def channel_url() -> str | None:
    """The Redis URL notifications go through, or None (embedded, or another broker)."""
    settings = get_settings()
    url = settings.broker_url
    if settings.embedded or not url or not url.startswith(("redis://", "rediss://")):
        return None
    return url


def channel(chain_id: str) -> str:
    return PREFIX + chain_id


def client(url: str) -> Any:
    """A Redis client for `url`, one per process."""
    import redis

    key = (os.getpid(), url)
    with _lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = redis.Redis.from_url(
                url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
            )
        return found


class _Local:
    """A subscription inside this process (embedded mode), shaped like Redis' pub/sub."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        self.queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        with _lock:
            _local.setdefault(chain_id, []).append(self.queue)

    def get_message(self, timeout: float = 0.0) -> dict[str, Any] | None:
        try:
            return {
                "data": self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
            }
        except queue.Empty:
            return None

    def close(self) -> None:
        with _lock:
            waiting = _local.get(self.chain_id, [])
            if self.queue in waiting:
                waiting.remove(self.queue)
            if not waiting:
                _local.pop(self.chain_id, None)


_local: dict[str, list[queue.SimpleQueue[str]]] = {}


def publish(chain_id: str, message: str) -> None:
    """Tell waiters that `chain_id` changed (best effort: never raises, never waits).

    The PUBLISH itself is left to this process's sender thread, so that a step does not
    wait for Redis: it is sent within a moment, in order, in one pipeline with whatever
    else is waiting then (two changes of one step, several steps of a busy pool child)."""
    if _local:
        with _lock:
            for waiting in _local.get(chain_id, ()):
                waiting.put(message)
    url = channel_url()
    if url is None or time.monotonic() < _quiet_until:
        return
    box = _outbox()
    global _pending
    with _lock:
        _pending += 1
    box.put((url, channel(chain_id), message))


_Item = tuple[str, str, str]  # (Redis URL, channel, message)
_sender: tuple[int, queue.SimpleQueue[_Item], threading.Thread] | None = None
_pending = 0  # published and not sent yet, in this process (see `flush`)
_sent = threading.Condition(_lock)


def _outbox() -> queue.SimpleQueue[_Item]:
    """This process's queue of messages to send, and its sender thread (a forked child
    starts its own: the parent's thread did not come along)."""
    global _sender, _pending
    sender = _sender
    if sender is not None and sender[0] == os.getpid():
        return sender[1]
    with _lock:
        if _sender is None or _sender[0] != os.getpid():
            _pending = 0  # a forked child: the parent's messages are the parent's to send
            box: queue.SimpleQueue[_Item] = queue.SimpleQueue()
            thread = threading.Thread(
                target=_send_loop, args=(box,), name="taskchain-events", daemon=True
            )
            _sender = (os.getpid(), box, thread)
            thread.start()
        return _sender[1]


def _send_loop(box: queue.SimpleQueue[_Item]) -> None:
    global _pending
    while True:
        first = box.get()
        batch = [first]
        while True:  # whatever else waits goes in the same round trip
            try:
                batch.append(box.get_nowait())
            except queue.Empty:
                break
        items = batch
        try:
            _send(items)
        finally:
            with _lock:
                _pending -= len(items)
                _sent.notify_all()


def _send(items: list[_Item]) -> None:
    global _quiet_until
    for url in dict.fromkeys(url for url, _, _ in items):
        if time.monotonic() < _quiet_until:
            return
        try:
            pipe = client(url).pipeline(transaction=False)
            for _, name, message in (item for item in items if item[0] == url):
                pipe.publish(name, message)
            pipe.execute()
        except Exception as exc:  # waiters fall back to polling; the steps go on
            _quiet_until = time.monotonic() + BACKOFF
            log.warning("could not publish a step change on %s: %s", mask_url(url), exc)


def flush(timeout: float = 1.0) -> bool:
    """Wait until this process has sent every change it published (True), at most
    `timeout` seconds: for a process about to exit, and for tests."""
    sender = _sender
    if sender is None or sender[0] != os.getpid():
        return True
    deadline = time.monotonic() + timeout
    with _lock:
        while _pending > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _sent.wait(left)  # the sender notifies after each batch
    return True


atexit.register(flush, 0.5)


def subscribe(chain_id: str) -> Any | None:
    """A Redis pub/sub subscribed to the chain's channel, or None when there is no channel
    (embedded, another broker, Redis unreachable): the caller then polls."""
    if get_settings().embedded:
        return _Local(chain_id)
    return listen(channel(chain_id))


def listen(name: str, *, pattern: bool = False) -> Any | None:
    """A Redis pub/sub subscribed to channel `name` (with `pattern`, to every channel it
    matches), or None when there is no channel (another broker, Redis unreachable)."""
    url = channel_url()
    if url is None:
        return None
    try:
        import redis

        conn = redis.Redis.from_url(url, socket_connect_timeout=SOCKET_TIMEOUT)
        pubsub = conn.pubsub()
        (pubsub.psubscribe if pattern else pubsub.subscribe)(name)
        # Subscribed once the server says so: a change announced before that would be lost
        # (the caller reads the store after this, and counts on hearing what comes later).
        confirmed = pubsub.get_message(timeout=CONFIRM_TIMEOUT)
        if confirmed is None or confirmed["type"] not in ("subscribe", "psubscribe"):
            pubsub.close()
            raise ConnectionError(f"no confirmation of the subscription to {name}")
        pubsub.ignore_subscribe_messages = True
        # Keep the client alive as long as its pub/sub: collected, it closes its connection
        # pool, and with it the subscription, until the next read quietly subscribes again
        # (and whatever was announced meanwhile is lost).
        pubsub.taskchain_client = conn
        return pubsub
    except Exception as exc:
        log.debug("no change notifications on %s: %s", name, exc)
        return None


def wait(pubsub: Any, timeout: float, *, not_before: float = 0.0) -> bool:
    """Block until a change is announced on `pubsub` or `timeout` passes; True if announced.
    A chain's end returns at once; another change not before `not_before` (monotonic time),
    taking every message that came meanwhile, so that one re-read serves them all."""
    deadline = time.monotonic() + timeout
    got = False
    while True:
        until = min(not_before, deadline) if got else deadline
        left = until - time.monotonic()
        if left <= 0:
            return got
        # None also for a message pub/sub consumed itself (the subscribe confirmation).
        message = pubsub.get_message(timeout=left)
        if message is None:
            continue
        data = message.get("data")
        text = data.decode() if isinstance(data, bytes) else str(data)
        if text.endswith(END):
            return True
        got = True
