"""The Celery app: JSON only, one queue per chain family, acks after the step, bounded publisher.

Queues, exchanges, remote control and events are all named from TASKCHAIN_QUEUE_PREFIX, so a
broker can be shared with other Celery applications (and other taskchain deployments): none
of them sees the others' tasks, workers or events.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from kombu import Exchange, Queue
from kombu.connection import resolve_aliases

from taskchain.engine.queues import queue_name, queue_names
from taskchain.settings import Settings, get_settings

STEP_TASK = "taskchain.run_step"
#: kombu's Redis transport with one Redis client per channel (see redis_transport.py); the
#: alias keeps its connections' URLs `redis://...` wherever Celery prints them.
REDIS_TRANSPORT = "taskchain.engine.redis_transport:Transport"
resolve_aliases.setdefault(REDIS_TRANSPORT, "redis")

_app: Celery | None = None
_app_key: tuple[str, str | None, int, float, str] | None = None
_lock = threading.Lock()


def celery_config(settings: Settings) -> dict[str, Any]:
    limit = settings.task_time_limit
    timeout = settings.broker_timeout
    prefix = settings.queue_prefix
    default = queue_name("default", prefix)
    config: dict[str, Any] = {
        "broker_url": settings.effective_broker,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Each queue its own direct exchange and routing key: left unset, Celery binds them
        # all to the default exchange and key, and every message lands in every queue.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in queue_names(prefix)
        ],
        # Never Celery's `celery` queue, exchange or control and event channels: on a broker
        # shared with another Celery app, each would take (or see) the other's messages.
        "task_default_queue": default,
        "task_default_exchange": default,
        "task_default_routing_key": default,
        "control_exchange": f"{prefix}control",
        "event_exchange": f"{prefix}events",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": limit,
        "task_time_limit": limit + 30,
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": timeout,
        # Celery's publisher retries forever by default: bound it so a dead broker means exit 4.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 0.5,
        },
        "broker_transport_options": {
            # Redis redelivers an unacked step after this; keep it above the time limit.
            "visibility_timeout": limit + 600,
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 0.5,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        },
        "worker_cancel_long_running_tasks_on_connection_loss": False,
    }
    if settings.effective_broker.startswith("redis://"):  # not rediss://: kombu reads TLS
        config["broker_transport"] = REDIS_TRANSPORT  # defaults from the transport's name
    if not settings.embedded and settings.task_events:
        # Task events, so that Flower and `celery events` see every step from the moment it
        # is queued (TASKCHAIN_TASK_EVENTS=false, or `taskchain worker --no-events` for one
        # worker, turns them off). Embedded, nobody could listen: the transport lives inside
        # the submitting process.
        config["task_send_sent_event"] = True
        config["worker_send_task_events"] = True
    if settings.uses_result_backend:
        config["result_backend"] = settings.result_backend
        config["result_expires"] = int(settings.retention or 86400)  # seconds; see README
        # Celery's Redis result backend subscribes on every send and retries for ever by
        # default: bound each connect and the whole retry, so a dead backend means exit 4.
        config["result_backend_transport_options"] = {"retry_policy": {"timeout": timeout}}
        config["redis_socket_connect_timeout"] = timeout
        config["redis_socket_timeout"] = timeout
    else:
        # Embedded, a result backend is ignored: the in-process worker records steps in the
        # store, and a backend it could not reach would stop that worker dead.
        config["task_ignore_result"] = True
    return config


def get_app() -> Celery:
    """The app for the current settings (rebuilt if they changed, e.g. between tests)."""
    global _app, _app_key
    settings = get_settings()
    key = (
        settings.effective_broker,
        settings.result_backend if settings.uses_result_backend else None,
        settings.task_time_limit,
        settings.broker_timeout,
        settings.queue_prefix,
    )
    with _lock:
        if _app is None or _app_key != key:
            _app = _create(settings)
            _app_key = key
        return _app


class _AMQP(AMQP):
    """Celery's messaging, with the task-sent event named like the rest of a step's events.

    Celery names that event after the task (`taskchain.run_step`) and the others after its
    shadow (`math_chain.add`); an event monitor (Flower) that receives the sent event last,
    as it often does for a step sent by another process, would show the bare task name.
    """

    def as_task_v2(self, task_id: str, name: str, *args: Any, **kwargs: Any) -> Any:
        message = super().as_task_v2(task_id, name, *args, **kwargs)
        shadow = message.headers.get("shadow")
        if shadow and message.sent_event:
            message.sent_event["name"] = shadow
        return message


def _create(settings: Settings) -> Celery:
    from taskchain.engine import tasks

    app = Celery("taskchain", set_as_current=False, amqp=_AMQP)
    app.conf.update(celery_config(settings))
    tasks.register(app)
    return app
