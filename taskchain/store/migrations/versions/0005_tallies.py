"""Stats that stay flat as the history grows: `chain.duration_us`, two indexes, the
`chain_tally` and `duration_hist` tables and the triggers that keep them (see tally.py).

Revision ID: 0005
Revises: 0004

The upgrade sets every finished chain's run time and counts the rows already there, then
installs the triggers, all in the upgrade's one transaction: on a store of a million chains
it takes seconds on SQLite, minutes on a busy PostgreSQL, once.

A later revision that rebuilds `chain` on SQLite (batch move-and-copy) drops the triggers
with the old table: it must call `tally.install` again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from taskchain.store import tally

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Tolerant, as 0003 and 0004: a store stamped by what it has (schema.py) may have these.
    bind = op.get_bind()
    tally.uninstall(bind)
    inspector = sa.inspect(bind)
    if "duration_us" not in {c["name"] for c in inspector.get_columns("chain")}:
        with op.batch_alter_table("chain") as batch:
            batch.add_column(sa.Column("duration_us", sa.BigInteger(), nullable=True))
    tables = set(inspector.get_table_names())
    for name in ("chain_tally", "duration_hist"):
        if name in tables:
            op.drop_table(name)
    op.create_table(
        "chain_tally",
        sa.Column("type", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("chains", sa.BigInteger(), nullable=False),
        sa.Column("timed", sa.BigInteger(), nullable=False),
        sa.Column("total_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "duration_hist",
        sa.Column("bucket", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("chains", sa.BigInteger(), nullable=False),
    )
    tally.backfill(bind)
    # After the backfill: indexes built once, not updated row by row.
    present = {i["name"] for i in inspector.get_indexes("chain")}
    with op.batch_alter_table("chain") as batch:
        if "ix_chain_duration" not in present:
            batch.create_index("ix_chain_duration", ["duration_us"])
        if "ix_chain_status_lease" not in present:
            batch.create_index("ix_chain_status_lease", ["status", "runner_lease_expires_at"])
    tally.install(bind)


def downgrade() -> None:
    tally.uninstall(op.get_bind())
    op.drop_table("duration_hist")
    op.drop_table("chain_tally")
    with op.batch_alter_table("chain") as batch:
        batch.drop_index("ix_chain_status_lease")
        batch.drop_index("ix_chain_duration")
        batch.drop_column("duration_us")
