"""Bare Celery, the benchmark's other side: one task doing the same work as a math_chain
step (an integer add), on the same Redis, with a Redis result backend.

    BENCH_BROKER=redis://127.0.0.1:PORT/1 BENCH_BACKEND=redis://127.0.0.1:PORT/2 \
    BENCH_CELERY=guarantees celery -A bare_celery worker -c 2 -Q bench

BENCH_CELERY=guarantees gives it taskchain's delivery guarantees (acks after the task, the
message back when a worker dies, prefetch 1); BENCH_CELERY=events adds what a taskchain
deployment also sends, task events (a task-sent event per message, and the worker runs with
-E); BENCH_CELERY=defaults keeps Celery's defaults.

BENCH_CELERY=store is the floor under any design that records every chain in a SQL store
before it is sent and every step before and after it runs, as taskchain does: the same
guarantees; the submitter records each chain (`record_chain`, one write transaction) before
`apply_async`; each task claims itself in one write transaction before the add and records
its result in another after it; all through sqlite3 directly on a SQLite file (BENCH_STORE;
WAL, as taskchain's store). It measures what those store transactions cost Celery and
nothing else. With
BENCH_STORE a PostgreSQL URL, the same two transactions go to that database through psycopg
directly (autocommit off, a durable commit each, as taskchain's store).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from celery import Celery

app = Celery(
    "bare_celery",
    broker=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6399/1"),
    backend=os.environ.get("BENCH_BACKEND", "redis://127.0.0.1:6399/2"),
)
app.conf.update(
    task_default_queue="bench",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    enable_utc=True,
    broker_connection_retry_on_startup=True,
)
MODE = os.environ.get("BENCH_CELERY", "guarantees")
if MODE in ("guarantees", "events", "store"):
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
    )
if MODE == "events":
    app.conf.update(task_send_sent_event=True, worker_send_task_events=True)


STORE = os.environ.get("BENCH_STORE")
_CLAIM = "INSERT INTO step (task_id, status) VALUES (?, 'RUNNING') ON CONFLICT DO NOTHING"
_RECORD = "UPDATE step SET status = 'COMPLETED', result = ? WHERE task_id = ?"
_CREATE = "CREATE TABLE IF NOT EXISTS step (task_id TEXT PRIMARY KEY, status TEXT, result TEXT)"
_CREATE_CHAIN = "CREATE TABLE IF NOT EXISTS chain (id TEXT PRIMARY KEY, status TEXT)"
_RECORD_CHAIN = "INSERT INTO chain (id, status) VALUES (?, 'PENDING')"
POSTGRES = bool(STORE and STORE.startswith("postgresql"))
_connections: dict[int, Any] = {}


def _pg_dsn() -> str:
    assert STORE
    return STORE.replace("postgresql+psycopg://", "postgresql://", 1)


def _store() -> Any:
    """This process's connection (a pool child opens its own after the fork)."""
    conn = _connections.get(os.getpid())
    if conn is None:
        assert STORE, "BENCH_CELERY=store needs BENCH_STORE"
        if POSTGRES:
            import psycopg

            conn = psycopg.connect(_pg_dsn(), autocommit=True, prepare_threshold=0)
        else:
            conn = sqlite3.connect(STORE, isolation_level=None, timeout=10)
            conn.execute("PRAGMA synchronous=NORMAL")
        _connections[os.getpid()] = conn
    return conn


if MODE == "store" and STORE:
    if POSTGRES:
        import psycopg

        with psycopg.connect(_pg_dsn(), autocommit=True) as _setup:
            _setup.execute(_CREATE)
            _setup.execute(_CREATE_CHAIN)
    else:
        with sqlite3.connect(STORE, isolation_level=None, timeout=10) as _setup:
            _setup.execute("PRAGMA journal_mode=WAL")
            _setup.execute(_CREATE)
            _setup.execute(_CREATE_CHAIN)


def _write(conn: Any, sql: str, params: tuple[Any, ...]) -> int:
    """One write transaction of one statement; its row count."""
    conn.execute("BEGIN" if POSTGRES else "BEGIN IMMEDIATE")
    count: int = conn.execute(sql, params).rowcount
    conn.execute("COMMIT")
    return count


def record_chain(chain_id: str) -> None:
    """The submitter's part of the floor: the chain recorded before it is sent."""
    mark = "%s" if POSTGRES else "?"
    _write(_store(), _RECORD_CHAIN.replace("?", mark), (chain_id,))


@app.task(name="bench.add", bind=True)
def add(self: Any, a: int, b: int) -> int:
    if MODE != "store":
        return a + b
    conn = _store()
    mark = "%s" if POSTGRES else "?"
    if not _write(conn, _CLAIM.replace("?", mark), (self.request.id,)):
        # A redelivered message: its step's result if it was recorded.
        row = conn.execute(f"SELECT result FROM step WHERE task_id = {mark}", (self.request.id,))
        recorded = row.fetchone()[0]
        if recorded is not None:
            return int(recorded)
    result = a + b
    _write(conn, _RECORD.replace("?", mark), (str(result), self.request.id))
    return result
