"""payment options: a payment accepts several (chain, asset)

payment_options: one row per way to pay a payment (position 0 is the payment's
own chain and asset for every existing payment), with its amount due, quote,
derived amounts and status, and the sweep lease, which moves here from payments
(a sweep job is one option). deposit_addresses: one row per (payment, chain) the
payment accepts, each with the depth its transfers wait for. sweep_transactions:
the asset of the job each belongs to (for existing rows, the payment's asset).

Existing payments keep exactly their state: their one option copies their
amounts and lease; its status follows domain/status.py from the stored amounts.
The downgrade refuses while any payment has more than one option.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=78, scale=0)
LEASE_COLUMNS = ("sweep_due_at", "sweep_claimed_by", "sweep_lease_until", "sweep_attempts", "sweep_last_error")


def upgrade() -> None:
    op.create_table(
        "payment_options",
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=True),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("amount_due", MONEY, nullable=False),
        sa.Column("amount_received", MONEY, server_default="0", nullable=False),
        sa.Column("amount_confirmed", MONEY, server_default="0", nullable=False),
        sa.Column("amount_swept", MONEY, server_default="0", nullable=False),
        sa.Column("sweep_fee", MONEY, server_default="0", nullable=False),
        sa.Column("sweep_dust", MONEY, server_default="0", nullable=False),
        sa.Column("quote", postgresql.JSONB(), nullable=True),
        sa.Column("confirmations_required", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="awaiting", nullable=False),
        sa.Column("sweep_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sweep_claimed_by", sa.String(length=128), nullable=True),
        sa.Column("sweep_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sweep_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sweep_last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("sweep_tx_hash", sa.String(length=66), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"]),
        sa.PrimaryKeyConstraint("payment_id", "position"),
        sa.UniqueConstraint("payment_id", "chain_id", "asset", name="uq_payment_options_asset"),
    )
    op.create_index(
        "ix_payment_options_sweep_due",
        "payment_options",
        ["chain_id", "sweep_due_at"],
        unique=False,
        postgresql_where=sa.text("sweep_due_at IS NOT NULL"),
    )
    # The option's status from the stored amounts (domain/status.py, one option):
    # paid at or above the minimum ceil(due x (10000 - bps) / 10000), at least 1.
    op.execute(
        """
        INSERT INTO payment_options (payment_id, position, chain_id, asset, token_address, decimals,
            amount_due, amount_received, amount_confirmed, amount_swept, sweep_fee, sweep_dust, quote,
            confirmations_required, status, sweep_due_at, sweep_claimed_by, sweep_lease_until,
            sweep_attempts, sweep_last_error, sweep_tx_hash)
        SELECT id, 0, chain_id, asset, token_address, decimals,
            amount_due, amount_received, amount_confirmed, amount_swept, sweep_fee, sweep_dust, quote,
            confirmations_required,
            CASE
              WHEN amount_received = 0 THEN 'awaiting'
              WHEN amount_confirmed >= greatest(1, div(amount_due * (10000 - underpayment_tolerance_bps) + 9999, 10000))
                THEN 'paid'
              WHEN amount_received > amount_confirmed THEN 'detected'
              ELSE 'underpaid'
            END,
            sweep_due_at, sweep_claimed_by, sweep_lease_until, sweep_attempts, sweep_last_error, sweep_tx_hash
        FROM payments
        """
    )
    op.drop_index("ix_payments_sweep_due", table_name="payments", postgresql_where=sa.text("sweep_due_at IS NOT NULL"))
    for column in LEASE_COLUMNS:
        op.drop_column("payments", column)

    op.add_column("deposit_addresses", sa.Column("confirmations_required", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE deposit_addresses d SET confirmations_required = p.confirmations_required "
        "FROM payments p WHERE p.id = d.payment_id"
    )
    op.alter_column("deposit_addresses", "confirmations_required", nullable=False)
    op.drop_constraint("deposit_addresses_payment_id_key", "deposit_addresses", type_="unique")
    op.create_unique_constraint("uq_deposit_addresses_payment_chain", "deposit_addresses", ["payment_id", "chain_id"])

    op.add_column("sweep_transactions", sa.Column("asset", sa.String(length=16), nullable=True))
    op.execute("UPDATE sweep_transactions s SET asset = p.asset FROM payments p WHERE p.id = s.payment_id")
    op.alter_column("sweep_transactions", "asset", nullable=False)


def downgrade() -> None:
    conn = op.get_bind()
    several = conn.execute(
        sa.text("SELECT count(*) FROM (SELECT 1 FROM payment_options GROUP BY payment_id HAVING count(*) > 1) m")
    ).scalar_one()
    if several:
        raise RuntimeError(
            f"{several} payments have several options; 0005 cannot hold them (settle or delete them first)"
        )
    op.drop_column("sweep_transactions", "asset")
    op.drop_constraint("uq_deposit_addresses_payment_chain", "deposit_addresses", type_="unique")
    op.create_unique_constraint("deposit_addresses_payment_id_key", "deposit_addresses", ["payment_id"])
    op.drop_column("deposit_addresses", "confirmations_required")
    op.add_column("payments", sa.Column("sweep_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("payments", sa.Column("sweep_claimed_by", sa.String(length=128), nullable=True))
    op.add_column("payments", sa.Column("sweep_lease_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("payments", sa.Column("sweep_attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("payments", sa.Column("sweep_last_error", sa.Text(), server_default="", nullable=False))
    op.execute(
        "UPDATE payments p SET sweep_due_at = o.sweep_due_at, sweep_claimed_by = o.sweep_claimed_by, "
        "sweep_lease_until = o.sweep_lease_until, sweep_attempts = o.sweep_attempts, "
        "sweep_last_error = o.sweep_last_error FROM payment_options o WHERE o.payment_id = p.id"
    )
    op.create_index(
        "ix_payments_sweep_due",
        "payments",
        ["chain_id", "sweep_due_at"],
        unique=False,
        postgresql_where=sa.text("sweep_due_at IS NOT NULL"),
    )
    op.drop_index("ix_payment_options_sweep_due", table_name="payment_options")
    op.drop_table("payment_options")
