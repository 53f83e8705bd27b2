"""refund claim links: the customer enters the refund's address on the checkout

payouts.claim_token: the unguessable token of a refund's claim page
(/refund/<token>), unique; NULL for refunds and payouts with a destination given.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payouts", sa.Column("claim_token", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_payouts_claim_token",
        "payouts",
        ["claim_token"],
        unique=True,
        postgresql_where=sa.text("claim_token IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_payouts_claim_token", table_name="payouts")
    op.drop_column("payouts", "claim_token")
