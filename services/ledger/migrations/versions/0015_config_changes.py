"""delayed configuration changes: a treasury or xpub change waits, cancellable

config_changes: one row per change of where a merchant's money goes that waits for
PAYMESH_CONFIG_CHANGE_DELAY_SECONDS: what it sets, who asked, when it takes effect,
and how it ended (applied, cancelled by whom, failed with why). At most one pending
change per merchant and target (a chain's treasury, or the xpub).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_changes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=80), server_default="", nullable=False),
        sa.Column("after", postgresql.JSONB(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=40), server_default="", nullable=False),
        sa.Column("failure", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_config_changes_merchant", "config_changes", ["merchant_id", "created_at"])
    op.create_index(
        "ix_config_changes_due", "config_changes", ["effective_at"], postgresql_where=sa.text("state = 'pending'")
    )
    op.create_index(
        "uq_config_changes_one_pending",
        "config_changes",
        ["merchant_id", "action", "target"],
        unique=True,
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("uq_config_changes_one_pending", table_name="config_changes")
    op.drop_index("ix_config_changes_due", table_name="config_changes")
    op.drop_index("ix_config_changes_merchant", table_name="config_changes")
    op.drop_table("config_changes")
