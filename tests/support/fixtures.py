"""Fixtures for real services and for hygiene (a pytest plugin, loaded by tests/conftest.py).

Services, each the suite's own, never a server or database it did not create:
- `redis_server` (session): a redis-server started on a free port, in its own folder, saving
  nothing; stopped at the end of the session. `redis_url` (each test): its URL, emptied first.
- `postgres_url` (each test): a PostgreSQL database created with a unique name, dropped after.
- `rabbitmq_url` (each test): a vhost made for this test on the RabbitMQ server, deleted after
  it (a message a killed worker left unacked must not reach the next test's worker).
- `redis_env`, `redis_worker`: the test's `env` with the private Redis as broker, and the same
  with a real `taskchain worker` running.

Every backend, one fixture each (as huey runs one test mixin over every storage backend):
- `store_url`: params sqlite and postgres; the test's store is a fresh SQLite file or a fresh
  PostgreSQL database (TASKCHAIN_DATABASE_URL, and the `env` of its subprocesses).
- `broker_url`: params redis and rabbitmq; the private Redis (emptied) or a fresh vhost.
  `broker_env` is the test's `env` with it as broker.
A test that takes one of these is marked `redis`, `postgres` or `rabbitmq` for it
(`pytest -m "not redis"` leaves them out).

Hygiene, for every test (autouse):
- `chain_types`: only the built-in chain types are registered when the test starts and after
  it ends; `probe_chain` (the test-only type) exists only in a test that asks for it.
- `reaped`: every background process started through tests.support.proc.spawn is killed when
  the test ends, passed or failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import probe, proc, services, stores

#: The marker a test gets for each service fixture it uses.
SERVICE_MARKERS = {
    "redis_server": "redis",
    "postgres_url": "postgres",
    "rabbitmq_url": "rabbitmq",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by the services it uses (fixtures it takes, directly or not)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, marker in SERVICE_MARKERS.items():
            if fixture in names and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@pytest.fixture(autouse=True)
def chain_types() -> Iterator[None]:
    probe.reset_chain_types()
    yield
    probe.reset_chain_types()


@pytest.fixture(autouse=True)
def reaped() -> Iterator[None]:
    yield
    proc.reap()


@pytest.fixture
def probe_chain() -> Any:
    """Registers the test-only `probe_chain` in this process for this test; its class."""
    from taskchain.chains import register
    from tests.support.chains import ProbeChain

    return register(ProbeChain)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.RedisServer]:
    """The session's own redis-server on a free port (never the machine's Redis)."""
    server = services.RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[services.RedisServer]:
    """A redis-server for this test alone, on a free port: for a test that stops and restarts
    its broker (the session's is shared by the other tests)."""
    folder = tmp_path / "redis"
    folder.mkdir()
    server = services.RedisServer(folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: services.RedisServer) -> str:
    """URL of the session's private Redis, emptied for this test (it is ours to flush)."""
    if not redis_server.ping():  # a test stopped it: start it again on the same port
        redis_server.start(redis_server.port)
    redis_server.flush()
    return redis_server.url()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database created for this test, with a unique name, and dropped after it."""
    services.require("PostgreSQL", services.POSTGRES)
    import psycopg

    name = f"taskchain_test_{uuid.uuid4().hex[:10]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    from taskchain.store import dispose_engines

    dispose_engines()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """amqp:// URL of a vhost made for this test on the RabbitMQ server, deleted after it."""
    vhost = services.RabbitVhost(f"taskchain_test_{uuid.uuid4().hex[:10]}")
    yield vhost.url
    vhost.delete()


@pytest.fixture(params=stores.BACKENDS)
def store_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test's store, once on SQLite and once on PostgreSQL."""
    return stores.use(request, monkeypatch)


#: The brokers every broker test runs on.
BROKERS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
]


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest) -> str:
    """The test's broker, once on Redis (the private server) and once on RabbitMQ (a vhost)."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def broker_env(env: dict[str, str], broker_url: str) -> dict[str, str]:
    """The test's `env` (its own store and workspace) with `broker_url` as broker."""
    return {**env, "TASKCHAIN_BROKER_URL": broker_url}


@pytest.fixture
def redis_env(env: dict[str, str], redis_url: str) -> dict[str, str]:
    """The test's `env` (its own store and workspace) with the private Redis as broker."""
    return {**env, "TASKCHAIN_BROKER_URL": redis_url}


@pytest.fixture
def redis_worker(redis_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real `taskchain worker` (prefork, 2 processes) on Redis; yields the client env."""
    with proc.worker(redis_env, tmp_path / "worker.log"):
        yield redis_env
