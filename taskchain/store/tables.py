"""The store's schema: every table, column and index, as SQLAlchemy Core tables.

This is the one definition of the schema. The SQLModel classes (`models.py`,
`workflow_model.py`) map onto these tables for the code that writes; the read commands
(`status`, `result`, `list`, `stats`) select from them directly, without building those
classes (a pydantic model and an ORM mapping each: most of a read command's start-up).
The tables live in `SQLModel.metadata`, which creates them and which Alembic compares.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    TypeDecorator,
)
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from taskchain.store import tally

metadata = SQLModel.metadata


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


def _status() -> Column[Any]:
    # Stored as the member's name (= its value): VARCHAR(9) on SQLite, an ENUM on PostgreSQL.
    return Column("status", Enum(Status), nullable=False, default=Status.PENDING)


def _time(name: str) -> Column[Any]:
    return Column(name, UTCDateTime, nullable=True)


def _created() -> Column[Any]:
    return Column("created_at", UTCDateTime, nullable=False, default=utcnow)


chain = Table(
    "chain",
    metadata,
    Column("id", AutoString(64), primary_key=True),
    Column("type", AutoString(64), nullable=False),
    Column("description", AutoString, nullable=False, default=""),
    _status(),
    Column("config", JsonText, nullable=False),
    _created(),
    _time("started_at"),
    _time("finished_at"),
    Column("result", JsonText, nullable=True),
    Column("error", AutoString, nullable=True),
    Column("step_count", Integer, nullable=False, default=0),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("attempt", Integer, nullable=False, default=1),
    # Added after the first release (schema revision 0003): nullable, old rows read None.
    #: The embedded process running the chain (`host:pid:nonce`), None when workers run it.
    Column("runner", AutoString(255), nullable=True),
    #: Until when that process is known alive; it renews this while it runs (see orphans).
    _time("runner_lease_expires_at"),
    #: The resolved workspace the chain was validated against, and the host that submitted it.
    Column("workspace", AutoString, nullable=True),
    Column("submit_host", AutoString(255), nullable=True),
    # Revision 0004: a workflow's job is a chain; both None for a plain chain.
    Column("workflow_id", AutoString(64), nullable=True, index=True),
    Column("job", AutoString(64), nullable=True),
    #: Revision 0005: finished_at - started_at in microseconds, set by the store's triggers
    #: (see tally.py) whenever those change; never written by taskchain's own statements.
    Column("duration_us", BigInteger, nullable=True),
    Index("ix_chain_created", "created_at"),
    Index("ix_chain_status_created", "status", "created_at"),
    Index("ix_chain_type_created", "type", "created_at"),
    # Revision 0005: stats' run times (min, max, the p50/p95 walk) and orphans.
    Index("ix_chain_duration", "duration_us"),
    Index("ix_chain_status_lease", "status", "runner_lease_expires_at"),
)

step = Table(
    "step",
    metadata,
    Column("chain_id", AutoString, ForeignKey("chain.id", ondelete="CASCADE"), primary_key=True),
    Column("index", Integer, primary_key=True),
    Column("name", AutoString, nullable=False),
    Column("queue", AutoString(64), nullable=False),
    Column("params", JsonText, nullable=False),
    _status(),
    Column("task_id", AutoString(64), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    _time("started_at"),
    _time("finished_at"),
    Column("result", JsonText, nullable=True),
    Column("error", AutoString, nullable=True),
    Column("progress", AutoString, nullable=True),
    Column("worker", AutoString, nullable=True),
    _time("lease_expires_at"),
    #: When a message for this step was last sent; the recovery sweep re-sends lost ones.
    _time("dispatched_at"),
)

#: Schema revision 0004: one row per `taskchain run`. Its jobs are chains (`chain.workflow_id`,
#: `chain.job`); this row keeps what the chains cannot: the validated file (to plan each job
#: when it starts), and the workflow's own status and times.
workflow = Table(
    "workflow",
    metadata,
    Column("id", AutoString(64), primary_key=True),
    Column("name", AutoString(255), nullable=False),
    Column("description", AutoString, nullable=False, default=""),
    _status(),
    #: The validated file, normalised: {"name", "description", "jobs": {NAME: {"type",
    #: "config" (references unresolved), "needs", "description"}}}, jobs in file order.
    Column("spec", JsonText, nullable=False),
    #: Where it came from (`workflow nightly.yaml`), for messages.
    Column("source", AutoString, nullable=False, default=""),
    _created(),
    _time("started_at"),
    _time("finished_at"),
    Column("error", AutoString, nullable=True),
    Column("workspace", AutoString, nullable=True),
    Index("ix_workflow_created", "created_at"),
)

CHAIN_TALLY, DURATION_HIST = tally.tables(metadata)
tally.on_create(metadata)
