"""transfers name their asset and kind

transfers.asset (the symbol of the asset moved, from chains.yaml when the ledger
records the transfer) and transfers.kind ('payment', or 'gas_topup' for native coin
the sweeper's gas wallet sent to a token payment's deposit address: its tx is one
of the payment's recorded gas top-ups).

Existing rows: a credited transfer moved the payment's own asset, so it gets the
payment's symbol; the others (another asset than the payment's) keep '' as the
migration cannot read chains.yaml (their token_address still tells native from
token). Transfers whose transaction is a recorded gas top-up of their payment
become 'gas_topup' (exact).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transfers", sa.Column("asset", sa.String(length=16), server_default="", nullable=False))
    op.add_column("transfers", sa.Column("kind", sa.String(length=16), server_default="payment", nullable=False))
    op.execute("UPDATE transfers t SET asset = p.asset FROM payments p WHERE t.payment_id = p.id AND t.credited")
    op.execute(
        "UPDATE transfers t SET kind = 'gas_topup' FROM sweep_transactions s "
        "WHERE s.tx_hash = t.tx_hash AND s.payment_id = t.payment_id AND s.kind = 'gas_topup' "
        "AND t.token_address IS NULL"
    )


def downgrade() -> None:
    op.drop_column("transfers", "kind")
    op.drop_column("transfers", "asset")
