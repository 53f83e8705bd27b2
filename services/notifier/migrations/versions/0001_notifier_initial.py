"""notifier: deliveries and attempts

Revision ID: n0001
Revises:
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "n0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_deliveries",
        sa.Column("id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("event_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", postgresql.UUID(as_uuid=False), nullable=True),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cycle_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("url", sa.Text(), server_default="", nullable=False),
        sa.Column("last_status_code", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index(
        "ix_notifier_deliveries_due",
        "notifier_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_notifier_deliveries_merchant_created", "notifier_deliveries", ["merchant_id", "created_at", "id"]
    )
    op.create_index("ix_notifier_deliveries_created", "notifier_deliveries", ["created_at", "id"])
    op.create_index("ix_notifier_deliveries_payment", "notifier_deliveries", ["payment_id"])
    op.create_index(
        "ix_notifier_deliveries_dead",
        "notifier_deliveries",
        ["merchant_id"],
        postgresql_where=sa.text("state = 'dead_lettered'"),
    )
    op.create_table(
        "notifier_attempts",
        sa.Column("delivery_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status_code", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("outcome", sa.String(length=16), server_default="in_progress", nullable=False),
        sa.Column("url", sa.Text(), server_default="", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["delivery_id"], ["notifier_deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("delivery_id", "number"),
    )


def downgrade() -> None:
    op.drop_table("notifier_attempts")
    op.drop_index("ix_notifier_deliveries_dead", table_name="notifier_deliveries")
    op.drop_index("ix_notifier_deliveries_payment", table_name="notifier_deliveries")
    op.drop_index("ix_notifier_deliveries_created", table_name="notifier_deliveries")
    op.drop_index("ix_notifier_deliveries_merchant_created", table_name="notifier_deliveries")
    op.drop_index("ix_notifier_deliveries_due", table_name="notifier_deliveries")
    op.drop_table("notifier_deliveries")
