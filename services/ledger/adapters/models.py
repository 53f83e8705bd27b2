"""The ledger's Postgres schema (SQLAlchemy 2.0 typed models). Alembic migrations
in services/ledger/migrations/ create it (tests/integration/test_ledger_schema.py
checks they match); money columns are NUMERIC(78,0) (uint256 fits)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import signing_keys_table

Money = Numeric(78, 0)


class Base(DeclarativeBase):
    pass


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_prefix: Mapped[str] = mapped_column(String(16))
    webhook_url: Mapped[str] = mapped_column(Text, server_default="")
    webhook_secret: Mapped[str] = mapped_column(Text, server_default="")
    xpub: Mapped[str] = mapped_column(Text)
    derivation_path: Mapped[str] = mapped_column(String(64))
    # Next unreserved BIP-32 index; ledger processes reserve small blocks of it.
    next_address_index: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The merchant's payment policy (domain/policy.Policy.to_json); {} is the defaults.
    payment_policy: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # The merchant's payout policy (domain/payouts.PayoutPolicy.to_json); {}: no approvals, no limits.
    payout_policy: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """A merchant's API key, stored hashed (the key is shown once): its scopes, expiry,
    revocation and last use (authentication.py, api_keys.py)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64))
    key_prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list] = mapped_column(JSONB)  # names, domain/scopes.Scope values
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(40), server_default="operator")  # a key id, or "operator"

    __table_args__ = (
        UniqueConstraint("key_hash", name="uq_api_keys_hash"),
        Index("ix_api_keys_merchant", "merchant_id", text("created_at DESC")),
    )


class WebhookEndpoint(Base):
    """One of a merchant's webhook endpoints (webhook_endpoints.py): URL, wanted event
    types, enabled, and its signing secret(s); the HMAC needs them in clear."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(200), server_default="")
    event_types: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    secret: Mapped[str] = mapped_column(Text)
    secret_rolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_webhook_endpoints_merchant", "merchant_id", "created_at"),)


class ConfigChange(Base):
    """A change of a treasury or the xpub waiting for its delay (config_changes.py):
    pending until effective_at, then applied; or cancelled, or failed."""

    __tablename__ = "config_changes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    action: Mapped[str] = mapped_column(String(40))  # "treasury.set" | "xpub.set"
    target: Mapped[str] = mapped_column(String(80), server_default="")  # chain id, or "" for the xpub
    after: Mapped[dict] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str] = mapped_column(String(40), server_default="")
    failure: Mapped[str] = mapped_column(Text, server_default="")

    __table_args__ = (
        Index("ix_config_changes_merchant", "merchant_id", "created_at"),
        Index("ix_config_changes_due", "effective_at", postgresql_where=text("state = 'pending'")),
        Index(
            "uq_config_changes_one_pending",
            "merchant_id",
            "action",
            "target",
            unique=True,
            postgresql_where=text("state = 'pending'"),
        ),
    )


class Treasury(Base):
    __tablename__ = "treasuries"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address: Mapped[str] = mapped_column(String(42))


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    asset: Mapped[str] = mapped_column(String(16))
    token_address: Mapped[str | None] = mapped_column(String(42))
    decimals: Mapped[int] = mapped_column(Integer)
    amount_due: Mapped[Decimal] = mapped_column(Money)
    amount_received: Mapped[Decimal] = mapped_column(Money, server_default="0")
    amount_confirmed: Mapped[Decimal] = mapped_column(Money, server_default="0")
    amount_swept: Mapped[Decimal] = mapped_column(Money, server_default="0")
    status: Mapped[str] = mapped_column(String(24))
    late: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    merchant_order_id: Mapped[str] = mapped_column(String(128), server_default="")
    metadata_: Mapped[dict] = mapped_column("metadata", JSONB, server_default=text("'{}'::jsonb"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    deposit_address: Mapped[str] = mapped_column(String(42))
    derivation_index: Mapped[int] = mapped_column(BigInteger)
    derivation_path: Mapped[str] = mapped_column(String(96))
    confirmations_required: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_reason: Mapped[str] = mapped_column(String(256), server_default="")
    # The last sweep transaction completed (any option's); the leases are per option.
    sweep_tx_hash: Mapped[str] = mapped_column(String(66), server_default="")
    # Native coin the completed sweeps paid the network (from their receipts), and, for
    # native payments, coin they set aside for that fee but did not use (left at the
    # deposit address). amount_swept is what reached the treasury.
    sweep_fee: Mapped[Decimal] = mapped_column(Money, server_default="0")
    sweep_dust: Mapped[Decimal] = mapped_column(Money, server_default="0")
    # A fiat price and the quote that converted it into amount_due (NULL: priced in
    # base units). The quote is JSON with exact decimals as strings
    # (records.QuoteRecord: asset, currency, rate, source, observed_at, quoted_at, expires_at).
    price_currency: Mapped[str | None] = mapped_column(String(3))
    price_amount: Mapped[Decimal | None] = mapped_column(Numeric)
    quote: Mapped[dict | None] = mapped_column(JSONB)
    # The payment policy in force (domain/policy.py), fixed at creation besides
    # confirmations_required: the underpayment tolerance, and until when the deposit
    # address is watched (expires_at + the policy's watch_after_expiry).
    underpayment_tolerance_bps: Mapped[int] = mapped_column(Integer, server_default="0")
    watch_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The merchant's resolution of an underpaid, overpaid or late payment.
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolution_note: Mapped[str] = mapped_column(String(256), server_default="")
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The public checkout: the page's unguessable token, what is paid for, where the
    # customer goes back to.
    checkout_token: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(512), server_default="")
    return_url: Mapped[str] = mapped_column(String(2048), server_default="")

    __table_args__ = (
        # Idempotency: one payment per (merchant, key); NULL keys are not deduplicated.
        Index(
            "uq_payments_merchant_idempotency",
            "merchant_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_payments_merchant_created", "merchant_id", text("created_at DESC"), text("id DESC")),
        Index("ix_payments_expiry", "expires_at", postgresql_where=text("expired_at IS NULL")),
        # Flat as history grows (migration 0016, bench/bench_growth.py): the address
        # snapshot, ListPayments by status and by merchant_order_id.
        Index("ix_payments_watch_until", "watch_until"),
        Index("ix_payments_merchant_status_created", "merchant_id", "status", text("created_at DESC"), text("id DESC")),
        Index(
            "ix_payments_merchant_order",
            "merchant_id",
            "merchant_order_id",
            postgresql_where=text("merchant_order_id <> ''"),
        ),
    )


class PaymentOption(Base):
    """One way to pay a payment: an asset on a chain with its own amount due, and its
    sweep job (lease, retries). Every payment has at least one (position 0 for a
    payment created for one chain and asset). The payment's chain_id, asset, amounts
    and sweep figures repeat those of its selected option (payment_state.py)."""

    __tablename__ = "payment_options"

    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # the order the merchant gave
    chain_id: Mapped[int] = mapped_column(BigInteger)
    asset: Mapped[str] = mapped_column(String(16))
    token_address: Mapped[str | None] = mapped_column(String(42))
    decimals: Mapped[int] = mapped_column(Integer)
    amount_due: Mapped[Decimal] = mapped_column(Money)
    amount_received: Mapped[Decimal] = mapped_column(Money, server_default="0")
    amount_confirmed: Mapped[Decimal] = mapped_column(Money, server_default="0")
    amount_swept: Mapped[Decimal] = mapped_column(Money, server_default="0")
    sweep_fee: Mapped[Decimal] = mapped_column(Money, server_default="0")
    sweep_dust: Mapped[Decimal] = mapped_column(Money, server_default="0")
    quote: Mapped[dict | None] = mapped_column(JSONB)  # as payments.quote; NULL without a price
    confirmations_required: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="awaiting")  # domain/status.OptionStatus
    # Sweeping: when the option became eligible, who holds the lease, retries.
    sweep_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sweep_claimed_by: Mapped[str | None] = mapped_column(String(128))
    sweep_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sweep_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    sweep_last_error: Mapped[str] = mapped_column(Text, server_default="")
    sweep_tx_hash: Mapped[str] = mapped_column(String(66), server_default="")
    # Refunds: what the option's confirmed refunds gave back (any source), and the part
    # of its confirmed funds refunds from the deposit address dealt with: their value
    # and, for the native coin, their network fees (domain/status.funds_accounted).
    amount_refunded: Mapped[Decimal] = mapped_column(Money, server_default="0")
    deposit_refunded: Mapped[Decimal] = mapped_column(Money, server_default="0")
    deposit_refund_fee: Mapped[Decimal] = mapped_column(Money, server_default="0")

    __table_args__ = (
        UniqueConstraint("payment_id", "chain_id", "asset", name="uq_payment_options_asset"),
        Index(
            "ix_payment_options_sweep_due",
            "chain_id",
            "sweep_due_at",
            postgresql_where=text("sweep_due_at IS NOT NULL"),
        ),
    )


class PaymentLink(Base):
    """A reusable payment page: each visitor who pays gets a payment of their own
    (payment_links.py); uses counts the payments it created."""

    __tablename__ = "payment_links"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    token: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(512), server_default="")
    # All in `currency`: a fixed price, or the bounds of the amount a visitor enters.
    currency: Mapped[str] = mapped_column(String(3))
    price_amount: Mapped[Decimal | None] = mapped_column(Numeric)
    min_amount: Mapped[Decimal | None] = mapped_column(Numeric)
    max_amount: Mapped[Decimal | None] = mapped_column(Numeric)
    options: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))  # [[chain_id, asset], ...]
    accept_all: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    accept_chain_ids: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    max_uses: Mapped[int] = mapped_column(Integer, server_default="0")  # 0: no limit
    uses: Mapped[int] = mapped_column(Integer, server_default="0")
    return_url: Mapped[str] = mapped_column(String(2048), server_default="")
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("token", name="uq_payment_links_token"),
        Index(
            "uq_payment_links_merchant_idempotency",
            "merchant_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )


class DepositAddress(Base):
    """Watched addresses; the serial id is the listener stream's cursor."""

    __tablename__ = "deposit_addresses"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    address: Mapped[str] = mapped_column(String(42))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    derivation_index: Mapped[int] = mapped_column(BigInteger)
    from_block: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The depth the payment's transfers on this chain wait for (the policy in force).
    confirmations_required: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The inserting transaction's id. The address feed reads rows above the
    # oldest still-running transaction (the snapshot's xmin) and moves its
    # cursor only to that horizon, so a slow commit can never be skipped.
    txid: Mapped[int] = mapped_column(BigInteger, server_default=text("(pg_current_xact_id()::text::bigint)"))

    __table_args__ = (
        UniqueConstraint("chain_id", "address", name="uq_deposit_addresses_chain_address"),
        # One address per payment, watched on each chain its options accept.
        UniqueConstraint("payment_id", "chain_id", name="uq_deposit_addresses_payment_chain"),
        Index("ix_deposit_addresses_feed", "chain_id", "txid"),
    )


class Transfer(Base):
    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(BigInteger)  # native: -1, or <= -2 for an internal transfer
    block_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    from_address: Mapped[str] = mapped_column(String(42))
    to_address: Mapped[str] = mapped_column(String(42))
    token_address: Mapped[str | None] = mapped_column(String(42))
    amount: Mapped[Decimal] = mapped_column(Money)
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"))
    state: Mapped[str] = mapped_column(String(16))  # seen | confirmed | orphaned
    credited: Mapped[bool] = mapped_column(Boolean)
    late: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The symbol of the asset moved (chains.yaml, when recorded), and payment | gas_topup:
    # a native transfer whose tx is one of the payment's recorded gas top-ups.
    asset: Mapped[str] = mapped_column(String(16), server_default="")
    kind: Mapped[str] = mapped_column(String(16), server_default="payment")
    # The block is stamped after the payment's quote lock window ended (priced payments).
    after_quote_expiry: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    __table_args__ = (
        # One row per (chain, tx, log, block): replays are no-ops, and the same
        # tx re-mined in another block after a reorg is a new row.
        UniqueConstraint("chain_id", "tx_hash", "log_index", "block_hash", name="uq_transfers_identity"),
        Index("ix_transfers_unconfirmed", "chain_id", "block_number", postgresql_where=text("state = 'seen'")),
        Index("ix_transfers_block_hash", "chain_id", "block_hash"),
        Index("ix_transfers_payment", "payment_id"),
    )


class OrphanedBlock(Base):
    """Blocks a reorg removed; a late transfer event from such a block is not credited."""

    __tablename__ = "orphaned_blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    block_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ChainHead(Base):
    __tablename__ = "chain_heads"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(66))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SweepTransaction(Base):
    __tablename__ = "sweep_transactions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # gas_topup | sweep
    # The asset of the sweep job (payment option) it belongs to; a gas top-up's is
    # the token it tops up for.
    asset: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # signed | broadcast | mined | confirmed | failed | replaced
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[int] = mapped_column(BigInteger)
    from_address: Mapped[str] = mapped_column(String(42))
    to_address: Mapped[str] = mapped_column(String(42))
    amount: Mapped[Decimal] = mapped_column(Money)
    token_address: Mapped[str | None] = mapped_column(String(42))
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    max_fee_per_gas: Mapped[Decimal] = mapped_column(Money)
    max_priority_fee_per_gas: Mapped[Decimal | None] = mapped_column(Money)
    block_number: Mapped[int] = mapped_column(BigInteger, server_default="0")
    error: Mapped[str] = mapped_column(Text, server_default="")
    replaces_tx_hash: Mapped[str] = mapped_column(String(66), server_default="")
    completed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # What it paid the network per its receipt (NULL until mined), and the native coin
    # the sweeper left aside for an OP-stack L1 data fee when it signed it.
    fee: Mapped[Decimal | None] = mapped_column(Money)
    l1_fee_reserve: Mapped[Decimal] = mapped_column(Money, server_default="0")

    __table_args__ = (
        Index("ix_sweep_transactions_payment", "payment_id"),
        Index("ix_sweep_transactions_created", text("created_at DESC"), text("id DESC")),
    )


class Outbox(Base):
    """Payment events written in the same transaction as the change; the relay
    publishes them to JetStream (Nats-Msg-Id = event_id) and marks them published."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(UUID(as_uuid=False), unique=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    payment_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(24))
    subject: Mapped[str] = mapped_column(String(160))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The inserting transaction's id: PaymentService.ListEvents reads a merchant's
    # events by (txid, id) below the oldest running transaction, an order that never
    # changes behind a reader (as deposit_addresses.txid for the address feed).
    txid: Mapped[int] = mapped_column(BigInteger, server_default=text("(pg_current_xact_id()::text::bigint)"))

    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        Index("ix_outbox_merchant_feed", "merchant_id", "txid", "id"),
    )


class Payout(Base):
    """A refund (payment_id set) or payout: an amount of one asset sent once to one
    destination by the sweeper (payouts.py). Claimable while due_at is set."""

    __tablename__ = "payouts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(8))  # refund | payout
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"))
    batch_id: Mapped[str] = mapped_column(String(40), server_default="")
    batch_index: Mapped[int] = mapped_column(Integer, server_default="0")  # its item's place in the batch
    chain_id: Mapped[int] = mapped_column(BigInteger)
    asset: Mapped[str] = mapped_column(String(16))
    token_address: Mapped[str | None] = mapped_column(String(42))
    decimals: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Money)
    fee_from_amount: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    amount_sent: Mapped[Decimal | None] = mapped_column(Money)
    fee: Mapped[Decimal | None] = mapped_column(Money)
    destination: Mapped[str] = mapped_column(String(42))
    source: Mapped[str] = mapped_column(String(16))  # deposit | payout_wallet
    source_address: Mapped[str] = mapped_column(String(42))
    source_path: Mapped[str] = mapped_column(String(96))
    # requested | approved | signed | broadcast | confirmed | failed | cancelled
    state: Mapped[str] = mapped_column(String(16))
    memo: Mapped[str] = mapped_column(String(500), server_default="")
    failure_reason: Mapped[str] = mapped_column(Text, server_default="")
    last_error: Mapped[str] = mapped_column(Text, server_default="")
    tx_hash: Mapped[str] = mapped_column(String(66), server_default="")
    approval_required: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    approved_by: Mapped[str] = mapped_column(String(40), server_default="")  # policy | operator | a key id
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_fingerprint: Mapped[str] = mapped_column(String(64), server_default="")
    claim_token: Mapped[str | None] = mapped_column(String(64))  # a refund's claim page (/refund/<token>)
    created_by_key: Mapped[str] = mapped_column(String(40), server_default="")  # the API key that asked for it
    # Sending: when it is due, who holds the lease, retries.
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_payouts_due", "chain_id", "due_at", postgresql_where=text("due_at IS NOT NULL")),
        Index("ix_payouts_merchant_created", "merchant_id", text("created_at DESC"), text("id DESC")),
        Index("ix_payouts_payment", "payment_id", postgresql_where=text("payment_id IS NOT NULL")),
        Index("uq_payouts_claim_token", "claim_token", unique=True, postgresql_where=text("claim_token IS NOT NULL")),
        Index(
            "uq_payouts_merchant_idempotency",
            "merchant_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )


class PayoutTransaction(Base):
    """A signed transaction of a payout, recorded before any node saw it (write-ahead);
    a gas top-up into the source is one too. payment_id repeats a refund's payment,
    so a top-up into its deposit address is never credited to the payment."""

    __tablename__ = "payout_transactions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    payout_id: Mapped[str] = mapped_column(ForeignKey("payouts.id"))
    payment_id: Mapped[str | None] = mapped_column(String(40))
    merchant_id: Mapped[str] = mapped_column(String(40))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))  # payout | gas_topup
    state: Mapped[str] = mapped_column(String(16))  # as sweep_transactions.state
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[int] = mapped_column(BigInteger)
    from_address: Mapped[str] = mapped_column(String(42))
    to_address: Mapped[str] = mapped_column(String(42))
    amount: Mapped[Decimal] = mapped_column(Money)
    token_address: Mapped[str | None] = mapped_column(String(42))
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    max_fee_per_gas: Mapped[Decimal] = mapped_column(Money)
    max_priority_fee_per_gas: Mapped[Decimal | None] = mapped_column(Money)
    block_number: Mapped[int] = mapped_column(BigInteger, server_default="0")
    error: Mapped[str] = mapped_column(Text, server_default="")
    replaces_tx_hash: Mapped[str] = mapped_column(String(66), server_default="")
    fee: Mapped[Decimal | None] = mapped_column(Money)
    l1_fee_reserve: Mapped[Decimal] = mapped_column(Money, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_payout_transactions_payout", "payout_id"),)


class AuditLog(Base):
    """Every change to a merchant's configuration, append-only (a trigger refuses UPDATE
    and DELETE; migration 0013), written in the transaction of the change (audit.py)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(40))  # operator | an API key id
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(80), server_default="")
    before: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    after: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_audit_log_merchant", "merchant_id", text("id DESC")),)


# Keys the ledger made for itself, shared by its replicas (the page token key).
SIGNING_KEYS = "signing_keys"
SigningKeys = signing_keys_table(Base.metadata, SIGNING_KEYS)


def _table(model: type[Base]) -> Table:
    """A model's Table (declarative mapping types `__table__` as any FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


# The tables by name, for the repository's SQL expressions (adapters/repository/).
MERCHANTS = _table(Merchant)
API_KEYS = _table(ApiKey)
WEBHOOK_ENDPOINTS = _table(WebhookEndpoint)
CONFIG_CHANGES = _table(ConfigChange)
TREASURIES = _table(Treasury)
PAYMENTS = _table(Payment)
PAYMENT_OPTIONS = _table(PaymentOption)
PAYMENT_LINKS = _table(PaymentLink)
DEPOSIT_ADDRESSES = _table(DepositAddress)
TRANSFERS = _table(Transfer)
ORPHANED_BLOCKS = _table(OrphanedBlock)
CHAIN_HEADS = _table(ChainHead)
SWEEP_TRANSACTIONS = _table(SweepTransaction)
PAYOUTS = _table(Payout)
PAYOUT_TRANSACTIONS = _table(PayoutTransaction)
OUTBOX = _table(Outbox)
AUDIT_LOG = _table(AuditLog)
