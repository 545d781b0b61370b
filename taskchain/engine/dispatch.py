"""Publishing steps to the broker, failing fast (exit 4) when it cannot be reached."""

from __future__ import annotations

from celery import Celery

from taskchain.engine.app import STEP_TASK, get_app
from taskchain.errors import BrokerUnavailable
from taskchain.settings import get_settings, mask_url
from taskchain.store import queries, session


def publish(app: Celery, *, chain_id: str, index: int, queue: str, task_id: str) -> None:
    from kombu.exceptions import OperationalError as KombuOperationalError

    try:
        app.send_task(STEP_TASK, args=[chain_id, index], queue=queue, task_id=task_id)
    except (KombuOperationalError, ConnectionError, OSError, TimeoutError) as exc:
        url = mask_url(get_settings().effective_broker)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrokerUnavailable(url, reason) from exc


def send_step(chain_id: str, index: int, *, app: Celery | None = None) -> None:
    """Send step `index` of a recorded chain to its queue, under its recorded task id."""
    with session() as s:
        step = queries.get_step(session=s, chain_id=chain_id, index=index)
    if step is None:
        return
    publish(
        app or get_app(), chain_id=chain_id, index=index, queue=step.queue, task_id=step.task_id
    )


def start(chain_id: str, index: int, *, queue: str, task_id: str) -> None:
    """Send the step a chain starts (or restarts) from; embedded, start the worker first."""
    if get_settings().embedded:
        from taskchain.engine.embedded import ensure_worker

        ensure_worker()
    publish(get_app(), chain_id=chain_id, index=index, queue=queue, task_id=task_id)
