"""What a distributed submit sends to Redis: the step's message and Celery's task-sent event
for it, in one round trip; a batch the broker drops is sent again, by Celery's retry policy."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import redis
from kombu.exceptions import BatchPublishError
from kombu.transport.redis import PublishBatch

from taskchain import settings
from taskchain.engine.queues import queue_name
from taskchain.engine.submit import submit
from taskchain.store import queries, session

pytestmark = pytest.mark.redis


@pytest.fixture
def distributed(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> redis.Redis:
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", redis_url)
    settings.configure()
    return redis.Redis.from_url(redis_url)


def _queued(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(queue_name("math"), 0, -1)]


def test_the_step_and_its_sent_event_go_in_one_round_trip(
    distributed: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    submit("math_chain", {"numbers": [1, 2]})  # connections opened, exchanges declared
    listener = distributed.pubsub()
    listener.psubscribe("*")
    assert listener.get_message(timeout=1)["type"] == "psubscribe"  # type: ignore[index]
    sent: list[bytes] = []
    real = redis.connection.Connection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(b"".join(command) if isinstance(command, list) else command)
        real(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counted)
    chain_id = submit("math_chain", {"numbers": [5, 6, 7]}).chain_id
    monkeypatch.undo()

    assert len(sent) == 1, sent  # one write to the broker: LPUSH and PUBLISH pipelined
    assert b"LPUSH" in sent[0] and b"PUBLISH" in sent[0]
    with session() as s:
        step = queries.get_chain(session=s, chain_id=chain_id).steps[0]
    message = _queued(distributed)[0]
    assert message["headers"]["id"] == step.task_id
    assert message["headers"]["shadow"] == "math_chain.add"
    events = []
    deadline = time.monotonic() + 5
    while not events and time.monotonic() < deadline:
        got = listener.get_message(timeout=0.5)
        if got and got["type"] == "pmessage":
            envelope = json.loads(got["data"])
            events.append(json.loads(base64.b64decode(envelope["body"])))
    listener.close()
    # What `celery events` and Flower read: the task-sent event, under the step's name.
    assert [(e["type"], e["uuid"], e["name"]) for e in events] == [
        ("task-sent", step.task_id, "math_chain.add")
    ]


def test_a_batch_the_broker_dropped_is_sent_again(
    distributed: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = PublishBatch.flush
    failures = []

    def drop_first(self: PublishBatch) -> None:
        if not failures:
            failures.append(1)
            self.discard()
            cause = redis.ConnectionError("Connection closed by server.")
            raise BatchPublishError("delivery is uncertain") from cause
        real(self)

    monkeypatch.setattr(PublishBatch, "flush", drop_first)
    chain_id = submit("math_chain", {"numbers": [1, 2]}).chain_id
    assert failures == [1]
    with session() as s:
        step = queries.get_chain(session=s, chain_id=chain_id).steps[0]
    assert [m["headers"]["id"] for m in _queued(distributed)] == [step.task_id]
