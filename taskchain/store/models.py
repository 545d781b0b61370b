"""The store's tables: one row per chain, one per step."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, Text, TypeDecorator
from sqlmodel import Field, SQLModel


class Status(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.SKIPPED})
CHAIN_STATUSES = (Status.PENDING, Status.RUNNING, Status.COMPLETED, Status.FAILED, Status.CANCELLED)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite forgets the zone; we put it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JsonText(TypeDecorator[Any]):
    """A JSON value kept as the exact text `json.dumps` wrote, in a TEXT column.

    Not SQLAlchemy's `JSON`: SQLite gives a column declared JSON NUMERIC affinity, which turns
    a bare number such as 10**100 into the REAL 1e+100. Not PostgreSQL's JSONB either: it
    rewrites numbers (1e308 comes back as a 309-digit integer, -0.0 as 0.0) and key order.
    TEXT keeps integers of any size (up to Python's 4,300-digit str limit), float reprs,
    strings that look like numbers and key order as they were. Escaping non-ASCII keeps lone
    surrogates storable. SQL NULL stands for None.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


def _time(**kw: Any) -> Any:
    return Field(default=None, sa_type=UTCDateTime, **kw)


def _json() -> Any:
    return Field(default=None, sa_column=Column(JsonText, nullable=True))


class ChainRecord(SQLModel, table=True):
    __tablename__ = "chain"
    __table_args__ = (
        Index("ix_chain_created", "created_at"),
        Index("ix_chain_status_created", "status", "created_at"),
        Index("ix_chain_type_created", "type", "created_at"),
        # Revision 0005: stats' run times (min, max, the p50/p95 walk) and orphans.
        Index("ix_chain_duration", "duration_us"),
        Index("ix_chain_status_lease", "status", "runner_lease_expires_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=64)
    description: str = Field(default="")
    status: Status = Field(default=Status.PENDING, max_length=16)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JsonText, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    result: Any = _json()
    error: str | None = None
    step_count: int = 0
    cancel_requested: bool = False
    attempt: int = 1
    # Added after the first release (schema revision 0003): nullable, old rows read None.
    #: The embedded process running the chain (`host:pid:nonce`), None when workers run it.
    runner: str | None = Field(default=None, max_length=255, nullable=True)
    #: Until when that process is known alive; it renews this while it runs (see orphans).
    runner_lease_expires_at: datetime | None = _time()
    #: The resolved workspace the chain was validated against, and the host that submitted it.
    workspace: str | None = Field(default=None, nullable=True)
    submit_host: str | None = Field(default=None, max_length=255, nullable=True)
    # Revision 0004: a workflow's job is a chain; both None for a plain chain.
    workflow_id: str | None = Field(default=None, max_length=64, nullable=True, index=True)
    job: str | None = Field(default=None, max_length=64, nullable=True)
    #: Revision 0005: finished_at - started_at in microseconds, set by the store's triggers
    #: (see tally.py) whenever those change; never written by taskchain's own statements.
    duration_us: int | None = Field(default=None, sa_type=BigInteger, nullable=True)


class StepRecord(SQLModel, table=True):
    __tablename__ = "step"

    chain_id: str = Field(primary_key=True, foreign_key="chain.id", ondelete="CASCADE")
    index: int = Field(primary_key=True)
    name: str
    queue: str = Field(max_length=64)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JsonText, nullable=False))
    status: Status = Field(default=Status.PENDING, max_length=16)
    task_id: str = Field(max_length=64)
    attempts: int = 0
    started_at: datetime | None = _time()
    finished_at: datetime | None = _time()
    result: Any = _json()
    error: str | None = None
    progress: str | None = None
    worker: str | None = None
    lease_expires_at: datetime | None = _time()
    #: When a message for this step was last sent; the recovery sweep re-sends lost ones.
    dispatched_at: datetime | None = _time()


from taskchain.store import tally  # noqa: E402

CHAIN_TALLY, DURATION_HIST = tally.tables(SQLModel.metadata)
tally.on_create(SQLModel.metadata)

# Registered with the tables above wherever the store is opened (its own module: see there).
from taskchain.store.workflow_model import WorkflowRecord as WorkflowRecord  # noqa: E402
