"""The `workflow` table (schema revision 0004): one row per `taskchain run`.

Its jobs are chains (`chain.workflow_id`, `chain.job`); this row keeps what the chains cannot:
the validated file (to plan each job when it starts), and the workflow's own status and times.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from taskchain.store.models import JsonText, Status, UTCDateTime, utcnow


class WorkflowRecord(SQLModel, table=True):
    __tablename__ = "workflow"
    __table_args__ = (Index("ix_workflow_created", "created_at"),)

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=255)
    description: str = Field(default="")
    status: Status = Field(default=Status.PENDING, max_length=16)
    #: The validated file, normalised: {"name", "description", "jobs": {NAME: {"type",
    #: "config" (references unresolved), "needs", "description"}}}, jobs in file order.
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JsonText, nullable=False))
    #: Where it came from (`workflow nightly.yaml`), for messages.
    source: str = Field(default="")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = None
    workspace: str | None = Field(default=None, nullable=True)
