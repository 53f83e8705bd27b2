"""sweep fees: amount_swept is what reached the treasury

payments.sweep_fee / sweep_dust and sweep_transactions.fee / l1_fee_reserve.
Until now a native payment's amount_swept held the confirmed amount the sweep
dealt with (value + fee + unused reserve); from here on it holds only what reached
the treasury, and the rest is split into the network fee and the dust left at the
deposit address (services/ledger/domain/accounting.py).

Native payments swept before this migration are rewritten so that their sum stays
what it was (their status does not change): amount_swept becomes the sum of their
completed sweep transactions' values (exact: the recorded value of each), sweep_fee
their gas_limit x max_fee_per_gas (exact for sweeps to an address without code on a
chain without an L1 data fee: the sweeper's maxFeePerGas == maxPriorityFeePerGas makes
that the cost; for a contract treasury or an OP-stack chain it is the most the
transaction could pay, as no receipt was kept), and sweep_dust the rest. The
per-transaction fee of those transactions stays NULL (not measured); token payments
swept before keep sweep_fee 0. The downgrade folds fee and dust back into amount_swept.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=78, scale=0)


def upgrade() -> None:
    op.add_column("payments", sa.Column("sweep_fee", MONEY, server_default="0", nullable=False))
    op.add_column("payments", sa.Column("sweep_dust", MONEY, server_default="0", nullable=False))
    op.add_column("sweep_transactions", sa.Column("fee", MONEY, nullable=True))
    op.add_column("sweep_transactions", sa.Column("l1_fee_reserve", MONEY, server_default="0", nullable=False))
    op.execute(
        """
        WITH s AS (
            SELECT payment_id, sum(amount) AS value, sum(gas_limit * max_fee_per_gas) AS cost
            FROM sweep_transactions WHERE kind = 'sweep' AND completed GROUP BY payment_id
        )
        UPDATE payments p SET
            amount_swept = s.value,
            sweep_fee = least(s.cost, p.amount_swept - s.value),
            sweep_dust = p.amount_swept - s.value - least(s.cost, p.amount_swept - s.value)
        FROM s
        WHERE p.id = s.payment_id AND p.token_address IS NULL AND p.amount_swept >= s.value
        """
    )


def downgrade() -> None:
    op.execute(
        "UPDATE payments SET amount_swept = amount_swept + sweep_fee + sweep_dust "
        "WHERE token_address IS NULL AND (sweep_fee > 0 OR sweep_dust > 0)"
    )
    op.drop_column("sweep_transactions", "l1_fee_reserve")
    op.drop_column("sweep_transactions", "fee")
    op.drop_column("payments", "sweep_dust")
    op.drop_column("payments", "sweep_fee")
