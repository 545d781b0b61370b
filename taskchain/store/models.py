"""The store's rows as SQLModel classes, for the code that writes: one per chain, one per step.

The columns themselves are defined once, in `tables.py`; each field here maps onto its column
(`sa_column`) and says what pydantic checks and what a new object starts with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from taskchain.store.tables import (
    CHAIN_STATUSES as CHAIN_STATUSES,
)
from taskchain.store.tables import (
    CHAIN_TALLY as CHAIN_TALLY,
)
from taskchain.store.tables import (
    DURATION_HIST as DURATION_HIST,
)
from taskchain.store.tables import (
    FINISHED as FINISHED,
)
from taskchain.store.tables import (
    JsonText as JsonText,
)
from taskchain.store.tables import (
    Status as Status,
)
from taskchain.store.tables import (
    UTCDateTime as UTCDateTime,
)
from taskchain.store.tables import (
    chain,
    step,
)
from taskchain.store.tables import (
    utcnow as utcnow,
)


def column(table: Any, name: str, default: Any = None, **kw: Any) -> Any:
    """The field of `table`'s column `name` (a `default_factory` in `kw` replaces `default`)."""
    if "default_factory" in kw:
        return Field(sa_column=table.c[name], **kw)
    return Field(default=default, sa_column=table.c[name], **kw)


class ChainRecord(SQLModel, table=True):
    __table__ = chain

    id: str = column(chain, "id", ..., max_length=64)
    type: str = column(chain, "type", ..., max_length=64)
    description: str = column(chain, "description", "")
    status: Status = column(chain, "status", Status.PENDING, max_length=16)
    config: dict[str, Any] = column(chain, "config", default_factory=dict)
    created_at: datetime = column(chain, "created_at", default_factory=utcnow)
    started_at: datetime | None = column(chain, "started_at")
    finished_at: datetime | None = column(chain, "finished_at")
    result: Any = column(chain, "result")
    error: str | None = column(chain, "error")
    step_count: int = column(chain, "step_count", 0)
    cancel_requested: bool = column(chain, "cancel_requested", False)
    attempt: int = column(chain, "attempt", 1)
    runner: str | None = column(chain, "runner", max_length=255)
    runner_lease_expires_at: datetime | None = column(chain, "runner_lease_expires_at")
    workspace: str | None = column(chain, "workspace")
    submit_host: str | None = column(chain, "submit_host", max_length=255)
    workflow_id: str | None = column(chain, "workflow_id", max_length=64)
    job: str | None = column(chain, "job", max_length=64)
    duration_us: int | None = column(chain, "duration_us")


class StepRecord(SQLModel, table=True):
    __table__ = step

    chain_id: str = column(step, "chain_id", ...)
    index: int = column(step, "index", ...)
    name: str = column(step, "name", ...)
    queue: str = column(step, "queue", ..., max_length=64)
    params: dict[str, Any] = column(step, "params", default_factory=dict)
    status: Status = column(step, "status", Status.PENDING, max_length=16)
    task_id: str = column(step, "task_id", ..., max_length=64)
    attempts: int = column(step, "attempts", 0)
    started_at: datetime | None = column(step, "started_at")
    finished_at: datetime | None = column(step, "finished_at")
    result: Any = column(step, "result")
    error: str | None = column(step, "error")
    progress: str | None = column(step, "progress")
    worker: str | None = column(step, "worker")
    lease_expires_at: datetime | None = column(step, "lease_expires_at")
    dispatched_at: datetime | None = column(step, "dispatched_at")


# Registered with the tables above wherever the store is opened (its own module: see there).
from taskchain.store.workflow_model import WorkflowRecord as WorkflowRecord  # noqa: E402
