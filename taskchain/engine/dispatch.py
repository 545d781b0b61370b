"""Publishing steps to the broker, failing fast (exit 4) when it cannot be reached."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Celery

from taskchain.engine.app import STEP_TASK, get_app
from taskchain.engine.queues import queue_name, step_task_name
from taskchain.errors import BrokerUnavailable, Unavailable
from taskchain.settings import get_settings, mask_url
from taskchain.store import ChainRecord, StepRecord, session


class ResultBackendUnavailable(BrokerUnavailable):
    """The result backend, which Celery reaches on every send, cannot be reached.

    A BrokerUnavailable because it means the same to a caller: the step was not sent, so
    a submit leaves no record and a retry fails its step, exactly as for a dead broker.
    """

    def __init__(self, url: str, reason: str) -> None:
        Unavailable.__init__(self, f"result backend {url} is unreachable: {reason}")
        self.url = url


def publish(
    app: Celery,
    *,
    chain_id: str,
    index: int,
    queue: str,
    task_id: str,
    shadow: str,
    producer: Any = None,
) -> None:
    """Send one step. `queue` is its family (as recorded), `shadow` the name Celery's tools
    show for it (see `step_task_name`); `producer` reuses one connection for many sends."""
    from kombu.exceptions import OperationalError as KombuOperationalError

    try:
        with app.producer_or_acquire(producer) as producer:
            _send(app, producer, chain_id=chain_id, index=index, queue=queue, task_id=task_id,
                  shadow=shadow)  # fmt: skip
    except Exception as exc:
        backend_error = _result_backend_error(app, exc)
        if backend_error is not None:
            url = mask_url(get_settings().result_backend)
            raise ResultBackendUnavailable(url, first_line(backend_error)) from exc
        if isinstance(exc, KombuOperationalError | ConnectionError | OSError | TimeoutError):
            url = mask_url(get_settings().effective_broker)
            raise BrokerUnavailable(url, first_line(exc)) from exc
        raise


def _send(app: Celery, producer: Any, *, chain_id: str, index: int, queue: str, task_id: str,
          shadow: str) -> None:  # fmt: skip
    """The step's message and Celery's task-sent event for it in one batch: on Redis, one
    pipelined round trip instead of two (an LPUSH and a PUBLISH); a broker that cannot batch
    sends them one by one. Celery retries each publish it makes by `task_publish_retry_policy`,
    but not the batch, which is sent at its end: it is retried here by the same policy (a
    message that did arrive the first time is then there twice, which the claim makes
    harmless: a step is run once, as when Celery retries a publish)."""
    from kombu.exceptions import BatchPublishError

    policy = app.conf.task_publish_retry_policy
    errors = tuple(producer.connection.connection_errors)
    for retries in itertools.count():
        try:
            # add_to_parent=False: a step sent from a step's task is no child of it in
            # Celery's eyes (the chain is the record), and Celery keeps no result object.
            with producer.batch():
                app.send_task(
                    STEP_TASK, args=[chain_id, index], queue=queue_name(queue),
                    task_id=task_id, shadow=shadow, producer=producer, add_to_parent=False,
                )  # fmt: skip
            return
        except BatchPublishError as exc:
            cause = exc.__cause__
            if not isinstance(cause, errors):
                raise
            if retries >= policy["max_retries"]:
                # What Celery would raise for the same failure of a single publish.
                raise ConnectionError(first_line(cause)) from exc
            wait = policy["interval_start"] + retries * policy["interval_step"]
            time.sleep(min(wait, policy["interval_max"]))


def _result_backend_error(app: Celery, exc: BaseException) -> BaseException | None:
    """The result backend's own connection error behind `exc`, if that is what failed.

    Celery's Redis backend subscribes before publishing and, when its reconnects run out,
    raises a RuntimeError from the connection error; a broker failure never looks like that.
    """
    if not get_settings().uses_result_backend:
        return None
    from celery.exceptions import BackendError

    if isinstance(exc, BackendError):
        return exc
    errors = tuple(getattr(app.backend, "connection_errors", ()) or ())
    cause = exc.__cause__
    if isinstance(exc, RuntimeError) and errors and isinstance(cause, errors):
        return cause
    return None


def first_line(exc: BaseException) -> str:
    """An exception as one line, for a one-line error message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _recorded(chain_id: str, index: int) -> tuple[str, str, str] | None:
    """(queue family, task id, shadow name) of a recorded step, in one query."""
    from sqlmodel import select

    query = (
        select(StepRecord.queue, StepRecord.task_id, StepRecord.name, ChainRecord.type)
        .join(ChainRecord, ChainRecord.id == StepRecord.chain_id)  # type: ignore[arg-type]
        .where(StepRecord.chain_id == chain_id, StepRecord.index == index)
    )
    with session() as s:
        row = s.exec(query).first()
    if row is None:
        return None
    queue, task_id, name, chain_type = row
    return queue, task_id, step_task_name(chain_type, name)


def send_step(chain_id: str, index: int, *, app: Celery | None = None) -> None:
    """Send step `index` of a recorded chain to its queue, under its recorded task id."""
    recorded = _recorded(chain_id, index)
    if recorded is None:
        return
    queue, task_id, shadow = recorded
    publish(
        app or get_app(), chain_id=chain_id, index=index, queue=queue, task_id=task_id,
        shadow=shadow,
    )  # fmt: skip


def start(
    chain_id: str, index: int, *, queue: str, task_id: str, shadow: str | None = None
) -> None:
    """Send the step a chain starts (or restarts) from; embedded, to this process's runner.

    Without `shadow` (the caller did not have the step's name at hand) it is read from the
    store.
    """
    if get_settings().embedded:
        from taskchain.engine import embedded

        embedded.send(chain_id, index)
        return
    if shadow is None:
        recorded = _recorded(chain_id, index)
        shadow = recorded[2] if recorded else STEP_TASK
    with _quiet_result_backend_log():
        publish(
            get_app(), chain_id=chain_id, index=index, queue=queue, task_id=task_id,
            shadow=shadow,
        )  # fmt: skip


def start_many(steps: Sequence[tuple[str, int, str, str, str]], *, sent: list[str]) -> None:
    """`start` for many chains at once, (chain_id, index, queue, task_id, shadow) each: one
    broker connection and producer for all (a batch submit). Appends each chain id to `sent` once
    its step reached the broker, so that a caller can tell what a failure left unsent."""
    if get_settings().embedded:
        from taskchain.engine import embedded

        for chain_id, index, *_ in steps:
            embedded.send(chain_id, index)
            sent.append(chain_id)
        return
    if not steps:
        return
    app = get_app()
    # The pool's producer connects lazily: a dead broker shows at the first publish.
    with _quiet_result_backend_log(), app.producer_or_acquire() as producer:
        for chain_id, index, queue, task_id, shadow in steps:
            publish(
                app, chain_id=chain_id, index=index, queue=queue, task_id=task_id,
                shadow=shadow, producer=producer,
            )  # fmt: skip
            sent.append(chain_id)


@contextmanager
def _quiet_result_backend_log() -> Iterator[None]:
    # Celery logs a dead result backend as a multi-line CRITICAL before raising; the command
    # reports the raised error as its one line, so the log would only repeat it.
    logger = logging.getLogger("celery.backends.asynchronous")
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous
