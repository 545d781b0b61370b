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

import contextlib
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
#: A step must never wait long on a notification: connecting, or writing to a server that
#: stopped reading, gives up after this many seconds (and the process goes quiet).
SOCKET_TIMEOUT = 0.5
#: Seconds a new subscription waits for the server to confirm it (then: polling).
CONFIRM_TIMEOUT = 2.0
MIN_GAP = 0.05
END = "END"

_lock = threading.Lock()
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
    """Tell waiters that `chain_id` changed (best effort: never raises, never waits long).

    Sent at once, from the caller's thread, on a connection of this process's own that the
    server never answers (`CLIENT REPLY OFF`): a PUBLISH is one write to a socket, with no
    round trip and no reply to read (~25 µs of CPU with the look for a closed connection,
    against ~110 µs for a pipelined PUBLISH and its reply; handing it to a sender thread, as
    before, cost more again in thread switches). Messages of one process arrive in the
    order it published them."""
    if _local:
        with _lock:
            for waiting in _local.get(chain_id, ()):
                waiting.put(message)
    url = channel_url()
    if url is None or time.monotonic() < _quiet_until:
        return
    with _send_lock:
        _send(url, channel(chain_id), message)


_send_lock = threading.Lock()
_senders: dict[tuple[int, str], Any] = {}  # (pid, url) -> connection; a fork makes its own


def _send(url: str, name: str, message: str) -> None:
    """PUBLISH on this process's reply-less connection to `url`. A connection the server
    closed (a restart, an idle timeout) is found before writing, by the end of its stream,
    and replaced; a failure to connect or write makes the process quiet for BACKOFF."""
    global _quiet_until
    key = (os.getpid(), url)
    conn = _senders.get(key)
    try:
        if conn is not None and not _open(conn):
            conn = None
        if conn is None:
            conn = _senders[key] = _connect(url)
        conn.send_command("PUBLISH", name, message, check_health=False)
    except Exception as exc:  # waiters fall back to polling; the steps go on
        _senders.pop(key, None)
        if conn is not None:
            conn.disconnect()
        _quiet_until = time.monotonic() + BACKOFF
        log.warning("could not publish a step change on %s: %s", mask_url(url), exc)


def _connect(url: str) -> Any:
    import redis

    pool = redis.ConnectionPool.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
    )
    conn = pool.make_connection()
    conn.connect()
    conn.send_command("CLIENT", "REPLY", "OFF")
    return conn


def _open(conn: Any) -> bool:
    """Whether the server still holds `conn`: with replies off it sends nothing, so
    anything to read is the end of the stream, or replies the server sent anyway (it
    refused `CLIENT REPLY OFF`, say, which is an error reply), read and dropped so that they
    do not pile up."""
    from redis.exceptions import ResponseError

    try:
        while conn.can_read(timeout=0):
            with contextlib.suppress(ResponseError):
                conn.read_response()
    except Exception:
        conn.disconnect()
        return False
    return True


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
