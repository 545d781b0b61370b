"""The one Celery task: run step `index` of chain `chain_id`, then send the next step."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init

from taskchain.engine.app import STEP_TASK
from taskchain.errors import StoreUnavailable
from taskchain.store import dispose_engines

MAX_STORE_RETRIES = 10


class StepFailed(Exception):
    """Raised after taskchain recorded the step FAILED, so Celery (its result backend, its
    events, Flower) calls the task FAILURE with the same reason. Never retried by Celery: the
    store already decided, and `taskchain retry` is how a chain runs again."""


def register(app: Celery) -> None:
    # shared=False: the task belongs to this app only (tests build several apps in one process).
    # throws: an expected failure, logged in one line without a traceback.
    @app.task(
        name=STEP_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, shared=False,
        throws=(StepFailed,),
    )  # fmt: skip
    def run_step(self: Task, chain_id: str, index: int) -> None:
        from taskchain.engine import dispatch, runner, workflow

        sent: list[int] = []

        def send(step: runner.Next) -> None:  # as recorded: sent without reading it again
            dispatch.publish(
                self.app, chain_id=chain_id, index=step.index, queue=step.queue,
                task_id=step.task_id, shadow=step.shadow,
            )  # fmt: skip
            sent.append(step.index)

        try:
            outcome = runner.run_step(
                chain_id, index, worker=self.request.hostname or "", send=send
            )
        except StoreUnavailable as exc:
            # The store is the record: wait for it rather than lose the step.
            raise self.retry(
                exc=exc, countdown=min(30, 2**self.request.retries), max_retries=MAX_STORE_RETRIES
            ) from exc
        if isinstance(outcome, runner.Busy):
            # A live worker holds this step (a duplicate message): look again when its lease
            # would have expired, in case that worker dies.
            raise self.retry(countdown=outcome.seconds, max_retries=None)
        if _may_end_a_job(outcome):  # workflow fan-in
            workflow.after_step(chain_id, app=self.app)
        if isinstance(outcome, runner.Failed):
            raise StepFailed(outcome.reason)
        if isinstance(outcome, runner.Next) and not sent:
            send(outcome)  # a finished step's follow-on (a redelivered message), not sent yet


def _may_end_a_job(outcome: Any) -> bool:
    """Whether the chain may have ended as a workflow's job: not when a next step follows,
    nor when the claim read that the chain is no job (most chains: no SELECT to ask)."""
    from taskchain.engine import runner

    if isinstance(outcome, runner.Ended):
        return outcome.job
    return not isinstance(outcome, runner.Next)


@worker_process_init.connect
def _fresh_connections(**_kwargs: Any) -> None:
    # A forked pool child must not share the parent's database connections.
    dispose_engines()
