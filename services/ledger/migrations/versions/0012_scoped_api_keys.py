"""scoped API keys: many keys per merchant, each with scopes, an expiry and revocation

api_keys: one row per key (its SHA-256 hash, unique; a prefix to recognise it; a
name; its scopes as a JSON list of names; created, expires, revoked and last-used
times; who issued it). Every merchant's existing key becomes its first row, with
every scope, so nothing a merchant runs today stops working.
payouts.created_by_key: the key that asked for a refund or payout (an approval
needs another key); payouts.approved_by widens to hold the approving key's id.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ALL_SCOPES = '["payments:read", "payments:write", "payouts:write", "payouts:approve", "webhooks:manage", "keys:manage"]'


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("scopes", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=40), server_default="operator", nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_hash"),
    )
    op.create_index("ix_api_keys_merchant", "api_keys", ["merchant_id", sa.text("created_at DESC")])
    op.execute(
        "INSERT INTO api_keys (id, merchant_id, name, key_hash, key_prefix, scopes, created_at, created_by) "
        "SELECT 'key_' || md5(id || api_key_hash), id, 'primary', api_key_hash, api_key_prefix, "
        f"'{ALL_SCOPES}'::jsonb, created_at, 'operator' FROM merchants"
    )
    op.add_column("payouts", sa.Column("created_by_key", sa.String(length=40), server_default="", nullable=False))
    # approved_by may now name the approving API key ("key_" + 32 hex digits).
    op.alter_column("payouts", "approved_by", type_=sa.String(length=40), existing_nullable=False)


def downgrade() -> None:
    op.alter_column("payouts", "approved_by", type_=sa.String(length=16), existing_nullable=False)
    op.drop_column("payouts", "created_by_key")
    op.drop_index("ix_api_keys_merchant", table_name="api_keys")
    op.drop_table("api_keys")
