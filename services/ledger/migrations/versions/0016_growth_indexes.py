"""indexes that keep reads flat as history grows (bench/bench_growth.py)

- payments (watch_until): the watched-address snapshot a listener loads at start
  reads only the payments still watched, instead of walking every deposit address
  ever made and looking each payment up;
- payments (merchant_id, status, created_at DESC, id DESC): ListPayments filtered by
  a status finds its page without walking the merchant's other payments;
- payments (merchant_id, merchant_order_id) where an order id is set: ListPayments
  by merchant_order_id is one index probe.

Built CONCURRENTLY (outside the migration's transaction), so a ledger with a large
payments table keeps taking payments while they build.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index("ix_payments_watch_until", "payments", ["watch_until"], postgresql_concurrently=True)
        op.create_index(
            "ix_payments_merchant_status_created",
            "payments",
            ["merchant_id", "status", sa.text("created_at DESC"), sa.text("id DESC")],
            postgresql_concurrently=True,
        )
        op.create_index(
            "ix_payments_merchant_order",
            "payments",
            ["merchant_id", "merchant_order_id"],
            postgresql_where=sa.text("merchant_order_id <> ''"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in ("ix_payments_merchant_order", "ix_payments_merchant_status_created", "ix_payments_watch_until"):
            op.drop_index(name, table_name="payments", postgresql_concurrently=True)
