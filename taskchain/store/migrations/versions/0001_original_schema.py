"""The schema of the first release: tables `chain` and `step`, JSON values declared JSON.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")


def _status_type() -> sa.types.TypeEngine[str]:
    """VARCHAR(9) on SQLite; PostgreSQL's native enum `status`, created once for both tables."""
    if op.get_bind().dialect.name == "postgresql":
        postgresql.ENUM(*STATUSES, name="status").create(op.get_bind(), checkfirst=True)
        return postgresql.ENUM(*STATUSES, name="status", create_type=False)
    return sa.Enum(*STATUSES, name="status")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    status = _status_type()
    op.create_table(
        "chain",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("status", status, nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("started_at", _time(), nullable=True),
        sa.Column("finished_at", _time(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("step_count", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_chain_created", "chain", ["created_at"])
    op.create_index("ix_chain_status_created", "chain", ["status", "created_at"])
    op.create_index("ix_chain_type_created", "chain", ["type", "created_at"])
    op.create_table(
        "step",
        sa.Column("chain_id", sa.String(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", status, nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", _time(), nullable=True),
        sa.Column("finished_at", _time(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("progress", sa.String(), nullable=True),
        sa.Column("worker", sa.String(), nullable=True),
        sa.Column("lease_expires_at", _time(), nullable=True),
        sa.Column("dispatched_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["chain_id"], ["chain.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("chain_id", "index"),
    )


def downgrade() -> None:
    op.drop_table("step")
    op.drop_table("chain")
    if op.get_bind().dialect.name == "postgresql":
        postgresql.ENUM(name="status").drop(op.get_bind(), checkfirst=True)
