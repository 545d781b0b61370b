"""The app's Redis transport: one Redis client per kombu channel, not one per command."""

from __future__ import annotations

import pytest

from taskchain import settings
from taskchain.engine.app import get_app
from taskchain.engine.redis_transport import Channel


def test_a_channel_reuses_one_client_for_every_command(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", redis_url)
    settings.configure()
    app = get_app()
    # The pooled producers' connections too (kombu builds those itself, not through the app).
    with app.producer_or_acquire() as producer:
        channel = producer.channel
        assert isinstance(channel, Channel)
        assert producer.connection.as_uri().startswith("redis://")  # printed as before
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        pool = channel.pool
        channel._disconnect_pools()  # what a fork or a reconnect does
        with channel.conn_or_acquire() as third:
            assert third is not first and third.connection_pool is channel.pool is not pool
            assert third.ping()
        producer.publish({"n": 1}, routing_key="taskchain-test-transport", retry=False)
        with channel.conn_or_acquire() as client:
            assert client.llen("taskchain-test-transport") == 1


def test_a_channel_whose_connection_closed_raises_a_connection_error(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis lost while a worker closes its channel: restoring the unacknowledged messages
    asks for a client after the connection is gone. kombu's own channel then raised an
    AttributeError, which stopped the worker in a CI run; a connection error is ignored by
    the close, and the worker reconnects."""
    from kombu.common import ignore_errors
    from redis.exceptions import ConnectionError as RedisConnectionError

    monkeypatch.setenv("TASKCHAIN_BROKER_URL", redis_url)
    settings.configure()
    connection = get_app().connection_for_write()
    channel = connection.default_channel
    assert isinstance(channel, Channel)
    channel._disconnect_pools()  # what the lost connection did
    channel.connection.client = None  # and the closed connection
    with pytest.raises(RedisConnectionError), channel.conn_or_acquire():
        pass
    with ignore_errors(connection):  # as the worker's close runs it: no error comes out
        channel.qos.restore_unacked()


def test_only_plain_redis_brokers_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskchain.engine.app import REDIS_TRANSPORT, celery_config

    def config_for(url: str) -> dict[str, object]:
        monkeypatch.setenv("TASKCHAIN_BROKER_URL", url)
        settings.configure()
        return celery_config(settings.get_settings())

    assert config_for("redis://127.0.0.1:1/0")["broker_transport"] == REDIS_TRANSPORT
    for url in ("rediss://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1//"):
        assert "broker_transport" not in config_for(url)
