"""Fixtures for real services (a pytest plugin, see tests/conftest.py): a Redis database of
our own (flushed), a fresh PostgreSQL database, RabbitMQ, and a real worker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import proc, services

REDIS_DB = int(os.environ.get("TASKCHAIN_TEST_REDIS_DB", "11"))


@pytest.fixture
def redis_url() -> Iterator[str]:
    services.require("Redis", services.REDIS)
    import redis

    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database created for this test and dropped after it."""
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
def rabbitmq_url() -> str:
    services.require("RabbitMQ", services.RABBITMQ)
    return "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def redis_env(env: dict[str, str], redis_url: str) -> dict[str, str]:
    return {**env, "TASKCHAIN_BROKER_URL": redis_url}


@pytest.fixture
def redis_worker(redis_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real `taskchain worker` (prefork, 2 processes) on Redis; yields the client env."""
    with proc.worker(redis_env, tmp_path / "worker.log"):
        yield redis_env
