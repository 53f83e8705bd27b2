"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 22:31:11.863851
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_heads",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("chain_id"),
    )
    op.create_table(
        "merchants",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("api_key_prefix", sa.String(length=16), nullable=False),
        sa.Column("webhook_url", sa.Text(), server_default="", nullable=False),
        sa.Column("webhook_secret", sa.Text(), server_default="", nullable=False),
        sa.Column("xpub", sa.Text(), nullable=False),
        sa.Column("derivation_path", sa.String(length=64), nullable=False),
        sa.Column("next_address_index", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("api_key_hash"),
    )
    op.create_table(
        "orphaned_blocks",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "block_hash"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=24), nullable=False),
        sa.Column("subject", sa.String(length=160), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["id"], unique=False, postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=True),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("amount_due", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("amount_received", sa.Numeric(precision=78, scale=0), server_default="0", nullable=False),
        sa.Column("amount_confirmed", sa.Numeric(precision=78, scale=0), server_default="0", nullable=False),
        sa.Column("amount_swept", sa.Numeric(precision=78, scale=0), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("late", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("merchant_order_id", sa.String(length=128), server_default="", nullable=False),
        sa.Column(
            "metadata", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("deposit_address", sa.String(length=42), nullable=False),
        sa.Column("derivation_index", sa.BigInteger(), nullable=False),
        sa.Column("derivation_path", sa.String(length=96), nullable=False),
        sa.Column("confirmations_required", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=256), server_default="", nullable=False),
        sa.Column("sweep_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sweep_claimed_by", sa.String(length=128), nullable=True),
        sa.Column("sweep_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sweep_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sweep_last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("sweep_tx_hash", sa.String(length=66), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_payments_expiry", "payments", ["expires_at"], unique=False, postgresql_where=sa.text("expired_at IS NULL")
    )
    op.create_index(
        "ix_payments_merchant_created",
        "payments",
        ["merchant_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "ix_payments_sweep_due",
        "payments",
        ["chain_id", "sweep_due_at"],
        unique=False,
        postgresql_where=sa.text("sweep_due_at IS NOT NULL"),
    )
    op.create_index(
        "uq_payments_merchant_idempotency",
        "payments",
        ["merchant_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "treasuries",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
        ),
        sa.PrimaryKeyConstraint("merchant_id", "chain_id"),
    )
    op.create_table(
        "deposit_addresses",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("derivation_index", sa.BigInteger(), nullable=False),
        sa.Column("from_block", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "txid", sa.BigInteger(), server_default=sa.text("(pg_current_xact_id()::text::bigint)"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "address", name="uq_deposit_addresses_chain_address"),
        sa.UniqueConstraint("payment_id"),
    )
    op.create_index("ix_deposit_addresses_feed", "deposit_addresses", ["chain_id", "txid"], unique=False)
    op.create_table(
        "sweep_transactions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("from_address", sa.String(length=42), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=True),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_per_gas", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("max_priority_fee_per_gas", sa.Numeric(precision=78, scale=0), nullable=True),
        sa.Column("block_number", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("replaces_tx_hash", sa.String(length=66), server_default="", nullable=False),
        sa.Column("completed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash"),
    )
    op.create_index(
        "ix_sweep_transactions_created",
        "sweep_transactions",
        [sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index("ix_sweep_transactions_payment", "sweep_transactions", ["payment_id"], unique=False)
    op.create_table(
        "transfers",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_address", sa.String(length=42), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=True),
        sa.Column("amount", sa.Numeric(precision=78, scale=0), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("credited", sa.Boolean(), nullable=False),
        sa.Column("late", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chain_id", "tx_hash", "log_index", "block_hash", name="uq_transfers_identity"),
    )
    op.create_index("ix_transfers_block_hash", "transfers", ["chain_id", "block_hash"], unique=False)
    op.create_index("ix_transfers_payment", "transfers", ["payment_id"], unique=False)
    op.create_index(
        "ix_transfers_unconfirmed",
        "transfers",
        ["chain_id", "block_number"],
        unique=False,
        postgresql_where=sa.text("state = 'seen'"),
    )


def downgrade() -> None:
    op.drop_index("ix_transfers_unconfirmed", table_name="transfers", postgresql_where=sa.text("state = 'seen'"))
    op.drop_index("ix_transfers_payment", table_name="transfers")
    op.drop_index("ix_transfers_block_hash", table_name="transfers")
    op.drop_table("transfers")
    op.drop_index("ix_sweep_transactions_payment", table_name="sweep_transactions")
    op.drop_index("ix_sweep_transactions_created", table_name="sweep_transactions")
    op.drop_table("sweep_transactions")
    op.drop_index("ix_deposit_addresses_feed", table_name="deposit_addresses")
    op.drop_table("deposit_addresses")
    op.drop_table("treasuries")
    op.drop_index(
        "uq_payments_merchant_idempotency",
        table_name="payments",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index("ix_payments_sweep_due", table_name="payments", postgresql_where=sa.text("sweep_due_at IS NOT NULL"))
    op.drop_index("ix_payments_merchant_created", table_name="payments")
    op.drop_index("ix_payments_expiry", table_name="payments", postgresql_where=sa.text("expired_at IS NULL"))
    op.drop_table("payments")
    op.drop_index("ix_outbox_unpublished", table_name="outbox", postgresql_where=sa.text("published_at IS NULL"))
    op.drop_table("outbox")
    op.drop_table("orphaned_blocks")
    op.drop_table("merchants")
    op.drop_table("chain_heads")
