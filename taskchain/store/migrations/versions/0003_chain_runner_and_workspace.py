"""Chains record who runs them and where: runner, its lease, workspace, submitting host.

Revision ID: 0003
Revises: 0002

All four are nullable (old rows read as None), so they are added in place. A column that is
already there is skipped: builds between releases added these without a version.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (
    ("runner", sa.String(255)),
    ("runner_lease_expires_at", sa.DateTime(timezone=True)),
    ("workspace", sa.String()),
    ("submit_host", sa.String(255)),
)


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("chain")}
    missing = [(name, kind) for name, kind in COLUMNS if name not in present]
    if missing:
        with op.batch_alter_table("chain") as batch:
            for name, kind in missing:
                batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chain") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
