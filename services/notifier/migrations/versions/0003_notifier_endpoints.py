"""notifier: events routed to a merchant's webhook endpoints, a delivery per endpoint

notifier_events: each payment event as taken in from the stream (unique event id:
a replay is a no-op), with its webhook body, until it is routed: one delivery per
endpoint of the merchant that wants its type. route_after holds an event back while
the ledger cannot say where the merchant's webhooks go.
notifier_deliveries.endpoint_id: the endpoint a delivery goes to ("primary": the
operator's webhook; every delivery made before this migration went there). A
delivery is unique per (event, endpoint).

Revision ID: n0003
Revises: n0002
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "n0003"
down_revision = "n0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_events",
        sa.Column("event_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=64), server_default="", nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("event_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("route_after", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        "ix_notifier_events_unrouted",
        "notifier_events",
        ["route_after"],
        postgresql_where=sa.text("routed_at IS NULL"),
    )
    op.create_index("ix_notifier_events_created", "notifier_events", ["created_at"])
    op.add_column(
        "notifier_deliveries",
        sa.Column("endpoint_id", sa.String(length=64), server_default="primary", nullable=False),
    )
    op.drop_constraint("notifier_deliveries_event_id_key", "notifier_deliveries", type_="unique")
    op.create_unique_constraint(
        "uq_notifier_deliveries_event_endpoint", "notifier_deliveries", ["event_id", "endpoint_id"]
    )
    op.create_index(
        "ix_notifier_deliveries_endpoint_dead",
        "notifier_deliveries",
        ["merchant_id", "endpoint_id"],
        postgresql_where=sa.text("state = 'dead_lettered'"),
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_deliveries_endpoint_dead", table_name="notifier_deliveries")
    op.drop_constraint("uq_notifier_deliveries_event_endpoint", "notifier_deliveries", type_="unique")
    op.execute("DELETE FROM notifier_deliveries WHERE endpoint_id <> 'primary'")
    op.create_unique_constraint("notifier_deliveries_event_id_key", "notifier_deliveries", ["event_id"])
    op.drop_column("notifier_deliveries", "endpoint_id")
    op.drop_index("ix_notifier_events_created", table_name="notifier_events")
    op.drop_index("ix_notifier_events_unrouted", table_name="notifier_events")
    op.drop_table("notifier_events")
