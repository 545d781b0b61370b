"""The `workflow` table's rows (schema revision 0004): one per `taskchain run`; its columns
are defined in `tables.py`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import SQLModel

from taskchain.store.models import Status, column, utcnow
from taskchain.store.tables import workflow


class WorkflowRecord(SQLModel, table=True):
    __table__ = workflow

    id: str = column(workflow, "id", ..., max_length=64)
    name: str = column(workflow, "name", ..., max_length=255)
    description: str = column(workflow, "description", "")
    status: Status = column(workflow, "status", Status.PENDING, max_length=16)
    spec: dict[str, Any] = column(workflow, "spec", default_factory=dict)
    source: str = column(workflow, "source", "")
    created_at: datetime = column(workflow, "created_at", default_factory=utcnow)
    started_at: datetime | None = column(workflow, "started_at")
    finished_at: datetime | None = column(workflow, "finished_at")
    error: str | None = column(workflow, "error")
    workspace: str | None = column(workflow, "workspace")
