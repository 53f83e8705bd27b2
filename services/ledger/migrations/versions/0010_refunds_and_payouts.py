"""refunds and payouts, sent exactly once

payouts: a refund (payment_id set) or payout of one asset on one chain to one
destination, its source (the payment's deposit address or the merchant's payout
wallet), its state (requested → approved → signed → broadcast → confirmed, or
failed / cancelled), the merchant's idempotency key and the sweeper's lease.
payout_transactions: each signed transaction, recorded before broadcast.
payment_options: what refunds gave back (amount_refunded) and what refunds from
the deposit address took from its funds (deposit_refunded, deposit_refund_fee).
merchants.payout_policy: approvals and daily limits per asset.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=78, scale=0)


def upgrade() -> None:
    op.add_column(
        "merchants",
        sa.Column("payout_policy", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    for column in ("amount_refunded", "deposit_refunded", "deposit_refund_fee"):
        op.add_column("payment_options", sa.Column(column, MONEY, server_default="0", nullable=False))
    op.create_table(
        "payouts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("batch_id", sa.String(length=40), server_default="", nullable=False),
        sa.Column("batch_index", sa.Integer(), server_default="0", nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=True),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("fee_from_amount", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("amount_sent", MONEY, nullable=True),
        sa.Column("fee", MONEY, nullable=True),
        sa.Column("destination", sa.String(length=42), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_address", sa.String(length=42), nullable=False),
        sa.Column("source_path", sa.String(length=96), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("memo", sa.String(length=500), server_default="", nullable=False),
        sa.Column("failure_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("tx_hash", sa.String(length=66), server_default="", nullable=False),
        sa.Column("approval_required", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("approved_by", sa.String(length=16), server_default="", nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), server_default="", nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_payouts_due", "payouts", ["chain_id", "due_at"], postgresql_where=sa.text("due_at IS NOT NULL"))
    op.create_index(
        "ix_payouts_merchant_created", "payouts", ["merchant_id", sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_index("ix_payouts_payment", "payouts", ["payment_id"], postgresql_where=sa.text("payment_id IS NOT NULL"))
    op.create_index(
        "uq_payouts_merchant_idempotency",
        "payouts",
        ["merchant_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "payout_transactions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("payout_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("from_address", sa.String(length=42), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=True),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_per_gas", MONEY, nullable=False),
        sa.Column("max_priority_fee_per_gas", MONEY, nullable=True),
        sa.Column("block_number", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("replaces_tx_hash", sa.String(length=66), server_default="", nullable=False),
        sa.Column("fee", MONEY, nullable=True),
        sa.Column("l1_fee_reserve", MONEY, server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["payout_id"], ["payouts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash"),
    )
    op.create_index("ix_payout_transactions_payout", "payout_transactions", ["payout_id"])


def downgrade() -> None:
    op.drop_index("ix_payout_transactions_payout", table_name="payout_transactions")
    op.drop_table("payout_transactions")
    for index in (
        "uq_payouts_merchant_idempotency",
        "ix_payouts_payment",
        "ix_payouts_merchant_created",
        "ix_payouts_due",
    ):
        op.drop_index(index, table_name="payouts")
    op.drop_table("payouts")
    for column in ("deposit_refund_fee", "deposit_refunded", "amount_refunded"):
        op.drop_column("payment_options", column)
    op.drop_column("merchants", "payout_policy")
