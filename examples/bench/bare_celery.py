"""Bare Celery, the benchmark's other side: one task doing the same work as a math_chain
step (an integer add), on the same Redis, with a Redis result backend.

    BENCH_BROKER=redis://127.0.0.1:PORT/1 BENCH_BACKEND=redis://127.0.0.1:PORT/2 \
    BENCH_CELERY=guarantees celery -A bare_celery worker -c 2 -Q bench

BENCH_CELERY=guarantees gives it taskchain's delivery guarantees (acks after the task, the
message back when a worker dies, prefetch 1); BENCH_CELERY=events adds what a taskchain
deployment also sends, task events (a task-sent event per message, and the worker runs with
-E); BENCH_CELERY=defaults keeps Celery's defaults.
"""

from __future__ import annotations

import os

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
if MODE in ("guarantees", "events"):
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
    )
if MODE == "events":
    app.conf.update(task_send_sent_event=True, worker_send_task_events=True)


@app.task(name="bench.add")
def add(a: int, b: int) -> int:
    return a + b
