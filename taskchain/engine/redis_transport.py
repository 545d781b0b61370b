"""kombu's Redis transport, with one Redis client per channel instead of one per command.

kombu's Redis channel builds a new `redis.Redis` around its connection pool for every
publish, acknowledgement and event (`Channel.conn_or_acquire`). The connection comes from
the pool, so nothing new is connected, but building the client fills its table of ~170
response callbacks each time: about 0.15 ms of CPU, paid ~4 times per step by a worker's
main process (the task events, the ack) and twice by its pool child (the next step and its
`task-sent` event). The client keeps no state of its own between commands (each takes a
connection from the pool and gives it back), so one per channel serves every command, from
any thread; when the channel replaces its pool (after a fork, a reconnect), a new client
is built around the new one.

The app uses it for `redis://` brokers (`app.REDIS_TRANSPORT`); every other behaviour is
kombu's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(redis.Channel):
    _shared: tuple[Any, Any] | None = None  # (pool, client around it)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        if self._pool is None and self.connection.client is None:
            # The broker connection closed under the channel (Redis lost while the worker was
            # closing it): kombu would fail with an AttributeError building a new pool, which
            # stops the worker ("Unrecoverable error"); a connection error is what the close
            # ignores, and the worker reconnects.
            raise RedisConnectionError("the broker connection is closed")
        pool = self.pool
        shared = self._shared
        if shared is None or shared[0] is not pool:
            shared = self._shared = (pool, self._create_client())
        yield shared[1]


class Transport(redis.Transport):
    Channel = Channel
