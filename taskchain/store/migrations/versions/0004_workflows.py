"""Workflows: a `workflow` table, and `chain.workflow_id` / `chain.job` for its jobs.

Revision ID: 0004
Revises: 0003

The columns are nullable (a plain chain has neither), so they are added in place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")


def upgrade() -> None:
    # Tolerant, as 0003: a store stamped by what it has (schema.py) may have some of these.
    inspector = sa.inspect(op.get_bind())
    if "workflow" not in inspector.get_table_names():
        _create_workflow()
    present = {c["name"] for c in inspector.get_columns("chain")}
    if "workflow_id" not in present:
        with op.batch_alter_table("chain") as batch:
            batch.add_column(sa.Column("workflow_id", sa.String(64), nullable=True))
            batch.add_column(sa.Column("job", sa.String(64), nullable=True))
            batch.create_index("ix_chain_workflow_id", ["workflow_id"])


def _create_workflow() -> None:
    op.create_table(
        "workflow",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("status", _status_type(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("workspace", sa.String(), nullable=True),
    )
    op.create_index("ix_workflow_created", "workflow", ["created_at"])


def _status_type() -> sa.types.TypeEngine[str]:
    """The type `chain.status` has (0001): PostgreSQL's enum `status`, which exists already."""
    if op.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.ENUM(name="status", create_type=False)
    return sa.Enum(*STATUSES, name="status")


def downgrade() -> None:
    with op.batch_alter_table("chain") as batch:
        batch.drop_index("ix_chain_workflow_id")
        batch.drop_column("job")
        batch.drop_column("workflow_id")
    op.drop_index("ix_workflow_created", "workflow")
    op.drop_table("workflow")
