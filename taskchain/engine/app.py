"""The Celery app: JSON only, one queue per chain family, acks after the step, bounded publisher."""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from taskchain.settings import Settings, get_settings

QUEUES = ("celery", "math", "data", "io")
STEP_TASK = "taskchain.run_step"

_app: Celery | None = None
_app_key: tuple[str, str | None, int, float] | None = None
_lock = threading.Lock()


def celery_config(settings: Settings) -> dict[str, Any]:
    limit = settings.task_time_limit
    timeout = settings.broker_timeout
    config: dict[str, Any] = {
        "broker_url": settings.effective_broker,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Each queue its own direct exchange and routing key: left unset, Celery binds them
        # all to the default exchange and key, and every message lands in every queue.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        "task_default_queue": "celery",
        "task_default_exchange": "celery",
        "task_default_routing_key": "celery",
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
    if settings.embedded:
        # The in-memory transport is polled; its default second would dominate a short chain.
        config["broker_transport_options"]["polling_interval"] = 0.005
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
    )
    with _lock:
        if _app is None or _app_key != key:
            _app = _create(settings)
            _app_key = key
        return _app


def _create(settings: Settings) -> Celery:
    from taskchain.engine import tasks

    app = Celery("taskchain", set_as_current=False)
    app.conf.update(celery_config(settings))
    tasks.register(app)
    return app
