"""the events API: payment events readable in commit order from the outbox

outbox.txid: the inserting transaction's id, so PaymentService.ListEvents can read
a merchant's events in an order that never changes behind a reader (rows of
transactions below the oldest one still running, by (txid, id)), as the address
feed does for deposit addresses. Existing rows get txid 0: they committed long ago,
so they come first, in id order. An index per merchant in that order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("txid", sa.BigInteger(), server_default="0", nullable=False))
    op.alter_column("outbox", "txid", server_default=sa.text("(pg_current_xact_id()::text::bigint)"))
    op.create_index("ix_outbox_merchant_feed", "outbox", ["merchant_id", "txid", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_merchant_feed", table_name="outbox")
    op.drop_column("outbox", "txid")
