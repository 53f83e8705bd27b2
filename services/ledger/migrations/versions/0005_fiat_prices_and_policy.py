"""fiat prices, quotes, payment policy and resolutions

payments: price_currency/price_amount (a fiat price; NULL for payments in base
units), quote (the locked rate, JSON with exact decimals as strings), the policy
in force (underpayment_tolerance_bps, watch_until), and the merchant's
resolution (resolution, resolution_note, resolved_at). merchants.payment_policy
(JSON, {} = defaults). transfers.after_quote_expiry.

Existing payments: no price, tolerance 0 (exactly today's rule), and watch_until =
expires_at + 7 days, the default of PAYMESH_WATCH_RETENTION_DAYS, which the
address feed applied to every payment before this migration (a deployment that
changed it can UPDATE payments SET watch_until = expires_at + its interval).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "merchants",
        sa.Column("payment_policy", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.add_column("payments", sa.Column("price_currency", sa.String(length=3), nullable=True))
    op.add_column("payments", sa.Column("price_amount", sa.Numeric(), nullable=True))
    op.add_column("payments", sa.Column("quote", postgresql.JSONB(), nullable=True))
    op.add_column("payments", sa.Column("underpayment_tolerance_bps", sa.Integer(), server_default="0", nullable=False))
    op.add_column("payments", sa.Column("watch_until", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE payments SET watch_until = expires_at + interval '7 days'")
    op.alter_column("payments", "watch_until", nullable=False)
    op.add_column("payments", sa.Column("resolution", sa.String(length=16), nullable=True))
    op.add_column("payments", sa.Column("resolution_note", sa.String(length=256), server_default="", nullable=False))
    op.add_column("payments", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "transfers",
        sa.Column("after_quote_expiry", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("transfers", "after_quote_expiry")
    for column in (
        "resolved_at",
        "resolution_note",
        "resolution",
        "watch_until",
        "underpayment_tolerance_bps",
        "quote",
        "price_amount",
        "price_currency",
    ):
        op.drop_column("payments", column)
    op.drop_column("merchants", "payment_policy")
