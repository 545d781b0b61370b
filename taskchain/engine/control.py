"""Broadcast control: revoke steps, ping and inspect workers, measure the queues.

Revoking is best effort (the store already decided); `workers` reports what the broker and
the workers answer, like `rq info`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from taskchain.engine.app import STEP_TASK, get_app
from taskchain.engine.queues import FAMILIES, family_of, queue_name
from taskchain.errors import BrokerUnavailable, InvalidInput
from taskchain.settings import get_settings, mask_url
from taskchain.timeparse import iso

log = logging.getLogger(__name__)


def revoke(task_ids: Sequence[str], *, terminate: bool = False) -> None:
    if not task_ids or get_settings().embedded:
        # Embedded: the worker is in this process and checks the store before each step.
        return
    try:
        get_app().control.revoke(list(task_ids), terminate=terminate, signal="SIGTERM")
    except Exception as exc:  # the cancel flag in the store stops the chain regardless
        log.warning("could not broadcast revoke: %s", exc)


def ping(timeout: float = 1.0) -> list[str]:
    """Names of the workers that answered a ping within `timeout` seconds."""
    replies = get_app().control.ping(timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)


def workers(*, timeout: float = 1.0) -> dict[str, Any]:
    """The workers online (their queues, concurrency, active steps, processed counts) and the
    depth of every taskchain queue. Workers get `timeout` seconds to answer a ping.

    InvalidInput in embedded mode (there is no broker to ask); BrokerUnavailable when the
    broker does not answer within the broker timeout.
    """
    from taskchain.engine.dispatch import first_line

    settings = get_settings()
    if settings.embedded:
        raise InvalidInput(
            "no broker configured: in embedded mode `submit` runs chains itself and no worker "
            "serves a queue. Set TASKCHAIN_BROKER_URL (e.g. redis://127.0.0.1:6379/0) or pass "
            "--broker-url"
        )
    app = get_app()
    try:
        with app.connection_for_write() as conn:
            # One attempt, bounded by the broker timeout (broker_connection_timeout).
            conn.ensure_connection(max_retries=0)
            queues = [_depth(conn, family) for family in FAMILIES]
        found = _inspect(app, timeout)
    except (BrokerUnavailable, InvalidInput):
        raise
    except Exception as exc:
        raise BrokerUnavailable(mask_url(settings.effective_broker), first_line(exc)) from exc
    return {"broker": mask_url(settings.effective_broker), "workers": found, "queues": queues}


def _depth(conn: Any, family: str) -> dict[str, Any]:
    """A queue's waiting messages, asked the way every kombu transport answers: a passive
    declare (Redis: the list's length; AMQP: the queue's message count). A queue the broker
    does not know (never used, or Redis' emptied list) holds nothing."""
    name = queue_name(family)
    channel = conn.channel()
    try:
        _, depth, _ = channel.queue_declare(queue=name, passive=True)
    except conn.channel_errors:
        depth = 0
    finally:
        with contextlib.suppress(Exception):  # AMQP closed the channel itself after a 404
            channel.close()
    return {"name": name, "family": family, "depth": int(depth)}


def _inspect(app: Any, timeout: float) -> list[dict[str, Any]]:
    names = sorted(n for reply in (app.control.ping(timeout=timeout) or []) for n in reply)
    if not names:
        return []
    # Everyone who answered the ping is asked by name, so each answer returns as soon as all
    # of them have replied instead of after the whole timeout.
    inspect = app.control.inspect(destination=names, timeout=max(timeout, 1.0), limit=len(names))
    stats = inspect.stats() or {}
    active_queues = inspect.active_queues() or {}
    active = inspect.active() or {}
    return [
        _worker(name, stats.get(name) or {}, active_queues.get(name), active.get(name))
        for name in names
    ]


def _worker(
    name: str, stats: dict[str, Any], queues: list[Any] | None, active: list[Any] | None
) -> dict[str, Any]:
    pool = stats.get("pool") or {}
    totals: dict[str, int] = stats.get("total") or {}
    queue_names = sorted(q.get("name", "") for q in (queues or []) if isinstance(q, dict))
    return {
        "name": name,
        "pid": stats.get("pid"),
        "queues": queue_names,
        "families": [f for q in queue_names if (f := family_of(q)) is not None],
        "concurrency": pool.get("max-concurrency"),
        # Counted by task name, which is each step's shadow name (`math_chain.add`).
        "processed": sum(totals.values()),
        "processed_by_task": dict(sorted(totals.items())),
        "active": [_active(task) for task in active or [] if isinstance(task, dict)],
    }


def _active(task: dict[str, Any]) -> dict[str, Any]:
    args = task.get("args") or []
    ours = task.get("type", STEP_TASK) == STEP_TASK and len(args) == 2
    started = task.get("time_start")
    return {
        "chain_id": args[0] if ours else None,
        "index": args[1] if ours else None,
        "task": task.get("name"),
        "task_id": task.get("id"),
        "started_at": (
            iso(datetime.fromtimestamp(started, UTC)) if isinstance(started, int | float) else None
        ),
    }
