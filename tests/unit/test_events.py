"""Change notifications: a waiter wakes when a step changes instead of polling the store."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from taskchain import settings
from taskchain.engine import events, wait
from taskchain.engine.submit import prepare
from taskchain.store import queries, session


def later(seconds: float, chain_id: str, message: str) -> None:
    threading.Timer(seconds, events.publish, args=(chain_id, message)).start()


def test_a_waiter_in_this_process_wakes_on_a_change() -> None:
    pubsub = events.subscribe("c1")  # embedded: a queue in this process
    assert pubsub is not None
    try:
        start = time.monotonic()
        later(0.1, "c1", "0:RUNNING")
        assert events.wait(pubsub, 5.0) is True
        assert 0.09 <= time.monotonic() - start < 2.0
        events.publish("other", "0:END")  # another chain's news is not ours
        assert events.wait(pubsub, 0.2) is False
    finally:
        pubsub.close()
    assert "c1" not in events._local


def test_changes_are_coalesced_but_the_end_is_seen_at_once() -> None:
    pubsub = events.subscribe("c2")
    assert pubsub is not None
    try:
        for index in range(5):
            events.publish("c2", f"{index}:COMPLETED")
        start = time.monotonic()
        assert events.wait(pubsub, 5.0, not_before=start + 0.3) is True
        assert time.monotonic() - start >= 0.29  # one wake-up for the five changes
        assert events.wait(pubsub, 0.05) is False  # all five were taken
        later(0.05, "c2", "5:END")
        start = time.monotonic()
        assert events.wait(pubsub, 5.0, not_before=start + 3.0) is True
        assert time.monotonic() - start < 1.0  # the end does not wait for not_before
    finally:
        pubsub.close()


def test_follow_sees_the_end_without_waiting_for_the_fallback() -> None:
    from taskchain.engine import runner

    chain, steps = prepare("math_chain", {"numbers": [1, 2, 3]})
    with session(write=True) as s:
        queries.insert_chain(session=s, chain=chain, steps=steps)

    def run() -> None:
        time.sleep(0.3)
        index: int | None = 0
        while index is not None:
            index = runner.execute_step(chain.id, index, worker="t")

    threading.Thread(target=run).start()
    start = time.monotonic()
    view = wait.follow(chain.id, timeout=30)
    took = time.monotonic() - start
    assert view.chain.result == 6 and len(view.steps) == 2
    assert took < 0.3 + wait.FALLBACK  # woken by the END, not by the next look at the store


@pytest.mark.redis
def test_workers_announce_changes_over_redis(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", redis_url)
    settings.configure()
    assert events.channel_url() == redis_url
    pubsub = events.subscribe("c3")
    assert pubsub is not None
    try:
        start = time.monotonic()
        later(0.1, "c3", "0:END")
        assert events.wait(pubsub, 5.0) is True
        assert time.monotonic() - start < 2.0
    finally:
        pubsub.close()


@pytest.mark.redis
def test_a_change_announced_right_after_subscribing_is_heard(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`subscribe` returns once the server has confirmed the subscription: a waiter reads the
    store after subscribing and counts on hearing every change from then on."""
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", redis_url)
    settings.configure()
    for n in range(20):
        pubsub = events.subscribe(f"c6-{n}")
        assert pubsub is not None
        try:
            events.publish(f"c6-{n}", "0:END")
            assert events.wait(pubsub, 5.0) is True, n
        finally:
            pubsub.close()


def test_no_channel_means_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", "amqp://guest:guest@127.0.0.1:1//")
    settings.configure()
    assert events.channel_url() is None
    assert events.subscribe("c4") is None
    events.publish("c4", "0:END")  # nothing to send to, and no error


@pytest.mark.redis
def test_changes_arrive_in_the_order_they_were_published(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", redis_url)
    settings.configure()
    pubsub = events.subscribe("c5")
    assert pubsub is not None
    try:
        sent = [f"{index}:{what}" for index in range(50) for what in ("RUNNING", "COMPLETED")]
        for message in sent:
            events.publish("c5", message)
        got = []
        deadline = time.monotonic() + 5.0
        while len(got) < len(sent) and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message is not None:
                got.append(message["data"].decode())
        assert got == sent
    finally:
        pubsub.close()


def test_an_unreachable_redis_never_holds_a_step_up(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.services import free_port

    monkeypatch.setenv("TASKCHAIN_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    settings.configure()
    monkeypatch.setattr(events, "_quiet_until", 0.0)
    start = time.monotonic()
    for index in range(20):
        events.publish("c6", f"{index}:COMPLETED")
    assert time.monotonic() - start < 0.2  # one refused connection, then quiet: steps go on
    assert events._quiet_until > time.monotonic()


@pytest.mark.redis
def test_a_connection_the_server_closed_is_replaced_before_a_change_is_lost(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publishing connection gets no replies (`CLIENT REPLY OFF`), so a write into a
    connection the server closed would vanish without an error: the end of its stream is
    looked for first, and a new connection carries the change."""
    import redis

    monkeypatch.setenv("TASKCHAIN_BROKER_URL", redis_url)
    settings.configure()
    monkeypatch.setattr(events, "_quiet_until", 0.0)
    admin = redis.Redis.from_url(redis_url)
    pubsub = events.subscribe("c7")
    assert pubsub is not None
    try:
        events.publish("c7", "0:RUNNING")
        assert _next_message(pubsub) == "0:RUNNING"
        # The server drops the publisher (a restart, an idle timeout), not the subscriber.
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        for index in range(3):
            events.publish("c7", f"{index}:COMPLETED")
            assert _next_message(pubsub) == f"{index}:COMPLETED"
        assert events._quiet_until == 0.0  # no failure seen
    finally:
        pubsub.close()
        admin.close()


def _next_message(pubsub: Any) -> str | None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message is not None:
            return str(message["data"].decode())
    return None


@pytest.mark.redis
def test_a_redis_user_refused_client_still_gets_its_changes_through_on_one_connection(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis user whose ACL refuses `CLIENT`: `CLIENT REPLY OFF` gets an error reply, and
    every PUBLISH a reply; they are read and dropped before each write, on the same
    connection, and no change is lost."""
    import redis

    admin = redis.Redis.from_url(redis_url)
    user = f"tc-noclient-{os.getpid()}"
    admin.acl_setuser(
        user, enabled=True, nopass=True, commands=["+@all", "-client"], keys=["*"],
        channels=["*"],
    )  # fmt: skip
    restricted = redis_url.replace("redis://", f"redis://{user}:any@", 1)
    monkeypatch.setenv("TASKCHAIN_BROKER_URL", restricted)
    settings.configure()
    monkeypatch.setattr(events, "_quiet_until", 0.0)
    monkeypatch.setattr(events, "_senders", {})
    connected: list[Any] = []

    def counted(url: str, connect: Any = events._connect) -> Any:
        connected.append(connect(url))
        return connected[-1]

    monkeypatch.setattr(events, "_connect", counted)
    pubsub = events.subscribe("c8")
    assert pubsub is not None
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            redis.Redis.from_url(restricted).client_id()  # the ACL does refuse CLIENT
        sent = [f"{index}:COMPLETED" for index in range(30)]
        for message in sent:
            events.publish("c8", message)
        assert [_next_message(pubsub) for _ in sent] == sent
        assert len(connected) == 1 and events._quiet_until == 0.0
        assert events._open(connected[0])  # replies waiting or not: still the server's
    finally:
        pubsub.close()
        admin.acl_deluser(user)
        admin.close()
