"""payment links: reusable pages that create one payment per visitor

payment_links: the merchant's link, its public token (unique), what it sells, its
fixed price (price_amount) or the bounds of an amount the visitor enters
(min_amount, max_amount), all in `currency`; the options its payments accept
(JSON [[chain_id, asset], ...], or accept_all with accept_chain_ids), its expiry,
its use limit and count, and the merchant's idempotency key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_links",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=512), server_default="", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("price_amount", sa.Numeric(), nullable=True),
        sa.Column("min_amount", sa.Numeric(), nullable=True),
        sa.Column("max_amount", sa.Numeric(), nullable=True),
        sa.Column("options", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("accept_all", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("accept_chain_ids", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.Integer(), server_default="0", nullable=False),
        sa.Column("uses", sa.Integer(), server_default="0", nullable=False),
        sa.Column("return_url", sa.String(length=2048), server_default="", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token", name="uq_payment_links_token"),
    )
    op.create_index(
        "uq_payment_links_merchant_idempotency",
        "payment_links",
        ["merchant_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_payment_links_merchant_idempotency", table_name="payment_links")
    op.drop_table("payment_links")
