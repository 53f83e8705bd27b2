"""checkout: a token per payment for its public page, a description and a return URL

payments.checkout_token: the unguessable token of the payment's page on the
checkout (unique); existing payments get one from two random UUIDs (Postgres'
gen_random_uuid, 244 random bits). payments.description and payments.return_url,
empty for existing payments.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("checkout_token", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE payments SET checkout_token = "
        "replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')"
    )
    op.alter_column("payments", "checkout_token", nullable=False)
    op.create_unique_constraint("uq_payments_checkout_token", "payments", ["checkout_token"])
    op.add_column("payments", sa.Column("description", sa.String(length=512), server_default="", nullable=False))
    op.add_column("payments", sa.Column("return_url", sa.String(length=2048), server_default="", nullable=False))


def downgrade() -> None:
    op.drop_column("payments", "return_url")
    op.drop_column("payments", "description")
    op.drop_constraint("uq_payments_checkout_token", "payments", type_="unique")
    op.drop_column("payments", "checkout_token")
