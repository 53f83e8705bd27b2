"""The ledger's records built from database rows (domain/records.py from_row): the
same record from a SQLAlchemy Row (its `_mapping`) and from an asyncpg Record (a
mapping, here a dict), money as int, and nothing read that the table lacks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.engine.result import result_tuple

from services.ledger.adapters import models
from services.ledger.domain.policy import Policy
from services.ledger.domain.records import (
    MerchantRecord,
    PaymentOptionRecord,
    PaymentRecord,
    SweepTxRecord,
    TransferRecord,
    WatchedAddressRecord,
)
from services.ledger.domain.status import OptionStatus, PaymentStatus, Resolution

pytestmark = pytest.mark.unit

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ADDRESS = "0x" + "ab" * 20
TX = "0x" + "cd" * 32


def sqlalchemy_row(values: dict):
    """A real sqlalchemy.engine.Row with these columns (as a query returns it)."""
    return result_tuple(list(values))(tuple(values.values()))


def both_rows(values: dict) -> list:
    return [sqlalchemy_row(values), dict(values)]


PAYMENT_ROW = {
    "id": "pay_1",
    "merchant_id": "mch_1",
    "chain_id": 31337,
    "asset": "TUSD",
    "token_address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "decimals": 6,
    "amount_due": Decimal(25_000_000),
    "amount_received": Decimal(25_000_001),
    "amount_confirmed": Decimal(25_000_000),
    "amount_swept": Decimal(0),
    "status": "overpaid",
    "late": False,
    "merchant_order_id": "order-1",
    "metadata": {"k": "v"},
    "idempotency_key": "key-1",
    "request_fingerprint": "f" * 64,
    "deposit_address": ADDRESS,
    "derivation_index": 7,
    "derivation_path": "m/44'/60'/0'/0/7",
    "confirmations_required": 2,
    "version": 4,
    "created_at": NOW,
    "updated_at": NOW + timedelta(seconds=5),
    "expires_at": NOW + timedelta(hours=1),
    "expired_at": None,
    "cancelled_at": None,
    "cancel_reason": "",
    "sweep_tx_hash": "",
    "sweep_fee": Decimal(0),
    "sweep_dust": Decimal(0),
    "price_currency": None,
    "price_amount": None,
    "quote": None,
    "underpayment_tolerance_bps": 0,
    "watch_until": NOW + timedelta(days=7, hours=1),
    "resolution": None,
    "resolution_note": "",
    "resolved_at": None,
    "checkout_token": "t" * 32,
    "description": "2 coffees",
    "return_url": "",
}


@pytest.mark.parametrize("row", both_rows(PAYMENT_ROW), ids=["sqlalchemy", "asyncpg"])
def test_payment_from_row(row):
    p = PaymentRecord.from_row(row)
    assert (p.id, p.merchant_id, p.chain_id, p.asset, p.decimals) == ("pay_1", "mch_1", 31337, "TUSD", 6)
    assert (p.amount_due, p.amount_received, p.amount_confirmed, p.amount_swept) == (
        25_000_000,
        25_000_001,
        25_000_000,
        0,
    )
    assert all(type(v) is int for v in (p.amount_due, p.amount_received, p.sweep_fee, p.sweep_dust))
    assert p.status is PaymentStatus.OVERPAID
    assert p.metadata == {"k": "v"} and p.request_fingerprint == "f" * 64
    assert (p.created_at, p.expires_at, p.expired_at) == (NOW, NOW + timedelta(hours=1), None)
    assert p.version == 4 and p.transfers == [] and p.options == []  # options are loaded separately
    assert (p.checkout_token, p.description, p.return_url) == ("t" * 32, "2 coffees", "")


OPTION_ROW = {
    "payment_id": "pay_1",
    "position": 1,
    "chain_id": 8453,
    "asset": "TUSD",
    "token_address": ADDRESS,
    "decimals": 6,
    "amount_due": Decimal(25_000_000),
    "amount_received": Decimal(25_000_001),
    "amount_confirmed": Decimal(25_000_000),
    "amount_swept": Decimal(0),
    "sweep_fee": Decimal(0),
    "sweep_dust": Decimal(0),
    "quote": None,
    "confirmations_required": 10,
    "status": "paid",
    "sweep_due_at": NOW,
    "sweep_claimed_by": None,
    "sweep_lease_until": None,
    "sweep_attempts": 0,
    "sweep_last_error": "",
    "sweep_tx_hash": "",
    "amount_refunded": Decimal(0),
    "deposit_refunded": Decimal(0),
    "deposit_refund_fee": Decimal(0),
}


@pytest.mark.parametrize("row", both_rows(OPTION_ROW), ids=["sqlalchemy", "asyncpg"])
def test_option_from_row(row):
    o = PaymentOptionRecord.from_row(row)
    assert (o.position, (o.chain_id, o.asset), o.token_address, o.decimals, o.confirmations_required) == (
        1,
        (8453, "TUSD"),
        ADDRESS,
        6,
        10,
    )
    assert (o.amount_due, o.amount_received, o.amount_confirmed) == (25_000_000, 25_000_001, 25_000_000)
    assert all(type(v) is int for v in (o.amount_due, o.amount_received, o.amount_swept, o.sweep_fee))
    assert o.status is OptionStatus.PAID and not o.is_native and o.quote is None and not o.selected
    p = PaymentRecord.from_row({**PAYMENT_ROW, "status": "overpaid"})
    p.options = [o]
    assert p.option(8453, "TUSD") is o and p.option(31337, "TUSD") is None
    assert p.option_for(8453, ADDRESS) is o and p.option_for(8453, None) is None
    assert p.depth_on(8453) == 10 and p.depth_on(1) == p.confirmations_required
    assert p.option_sweepable(o)  # overpaid, confirmed, nothing swept


QUOTE = {
    "asset": "TUSD",
    "currency": "USD",
    "rate": "0.9995",
    "source": "fixed",
    "observed_at": NOW.isoformat(),
    "quoted_at": NOW.isoformat(),
    "expires_at": (NOW + timedelta(minutes=15)).isoformat(),
}


@pytest.mark.parametrize("quote", [QUOTE, json.dumps(QUOTE)], ids=["jsonb", "text"])
def test_priced_payment_from_row(quote):
    """The price (NUMERIC, trailing zeros as Postgres keeps them) and the quote (JSONB,
    a dict or text) come back exact; the policy in force and the resolution too."""
    p = PaymentRecord.from_row(
        {
            **PAYMENT_ROW,
            "price_currency": "USD",
            "price_amount": Decimal("25.00"),
            "quote": quote,
            "underpayment_tolerance_bps": 50,
            "resolution": "accepted",
            "resolution_note": "fine",
            "resolved_at": NOW,
        }
    )
    assert p.price is not None and str(p.price) == "25.00 USD" and p.price.amount == Decimal(25)
    assert p.quote is not None and p.quote.rate == Decimal("0.9995") and type(p.quote.rate) is Decimal
    assert p.quote.expires_at == NOW + timedelta(minutes=15)
    assert p.tolerance_bps == 50 and p.amount_minimum == 24_875_000  # 25 TUSD less 0.5 %
    assert p.resolution is Resolution.ACCEPTED and p.resolved_at == NOW
    option = PaymentOptionRecord.from_row({**OPTION_ROW, "quote": quote})
    assert p.option_value(option, 25_000_000) == Decimal("24.98")  # 25 x 0.9995 = 24.9875, rounded down
    assert p.option_minimum(option) == 24_875_000


def test_payment_metadata_from_jsonb_text_or_null():
    """A raw asyncpg connection returns JSONB as text; SQLAlchemy decodes it."""
    assert PaymentRecord.from_row({**PAYMENT_ROW, "metadata": '{"k": "v"}'}).metadata == {"k": "v"}
    assert PaymentRecord.from_row({**PAYMENT_ROW, "metadata": None}).metadata == {}


TRANSFER_ROW = {
    "id": 12,
    "chain_id": 31337,
    "tx_hash": TX,
    "log_index": -1,
    "block_hash": "0x" + "ef" * 32,
    "block_number": 1_000,
    "block_timestamp": NOW,
    "from_address": ADDRESS,
    "to_address": ADDRESS,
    "token_address": None,
    "amount": Decimal(10**18),
    "payment_id": "pay_1",
    "state": "seen",
    "credited": True,
    "late": False,
    "created_at": NOW + timedelta(seconds=1),
    "asset": "ETH",
    "kind": "payment",
    "after_quote_expiry": False,
}


@pytest.mark.parametrize("row", both_rows(TRANSFER_ROW), ids=["sqlalchemy", "asyncpg"])
def test_transfer_from_row(row):
    t = TransferRecord.from_row(row)
    assert t == TransferRecord(
        chain_id=31337,
        tx_hash=TX,
        log_index=-1,
        block_number=1_000,
        block_hash="0x" + "ef" * 32,
        from_address=ADDRESS,
        amount=10**18,
        state="seen",
        credited=True,
        late=False,
        observed_at=NOW + timedelta(seconds=1),  # when the ledger recorded it
        token_address=None,
        asset="ETH",
        kind="payment",
    )
    assert type(t.amount) is int


MERCHANT_ROW = {
    "id": "mch_1",
    "name": "shop",
    "status": "active",
    "api_key_hash": "h" * 64,
    "api_key_prefix": "pmk_abcdefgh",
    "webhook_url": "https://shop.example/hook",
    "webhook_secret": "whsec_x",
    "xpub": "xpub-test",
    "derivation_path": "m/44'/60'/0'",
    "next_address_index": 20,
    "created_at": NOW,
    "updated_at": NOW,
    "payment_policy": {"tolerance_bps": 50, "confirmations": {"31337": 4}},
    "payout_policy": {},
}


@pytest.mark.parametrize("row", both_rows(MERCHANT_ROW), ids=["sqlalchemy", "asyncpg"])
def test_merchant_from_row(row):
    m = MerchantRecord.from_row(row, {31337: ADDRESS})
    assert m == MerchantRecord(
        id="mch_1",
        name="shop",
        status="active",
        api_key_prefix="pmk_abcdefgh",
        webhook_url="https://shop.example/hook",
        webhook_secret="whsec_x",
        xpub="xpub-test",
        derivation_path="m/44'/60'/0'",
        next_address_index=20,
        created_at=NOW,
        treasuries={31337: ADDRESS},
        payment_policy=Policy(tolerance_bps=50, confirmations={31337: 4}),
    )


SWEEP_TX_ROW = {
    "id": 3,
    "payment_id": "pay_1",
    "merchant_id": "mch_1",
    "chain_id": 31337,
    "kind": "sweep",
    "asset": "ETH",
    "state": "mined",
    "tx_hash": TX,
    "raw_tx": b"\x02signed",
    "nonce": 5,
    "from_address": ADDRESS,
    "to_address": ADDRESS,
    "amount": Decimal(10**18),
    "token_address": None,
    "gas_limit": 21_000,
    "max_fee_per_gas": Decimal(2 * 10**9),
    "max_priority_fee_per_gas": Decimal(10**9),
    "block_number": 1_001,
    "error": "",
    "replaces_tx_hash": "",
    "completed": False,
    "created_at": NOW,
    "updated_at": NOW,
    "fee": Decimal(21_000 * 10**9),
    "l1_fee_reserve": Decimal(0),
}


@pytest.mark.parametrize("row", both_rows(SWEEP_TX_ROW), ids=["sqlalchemy", "asyncpg"])
def test_sweep_tx_from_row(row):
    s = SweepTxRecord.from_row(row)
    assert (s.id, s.payment_id, s.kind, s.state, s.tx_hash, s.raw_tx, s.nonce) == (
        3,
        "pay_1",
        "sweep",
        "mined",
        TX,
        b"\x02signed",
        5,
    )
    assert (s.amount, s.max_fee_per_gas, s.max_priority_fee_per_gas, s.fee, s.l1_fee_reserve) == (
        10**18,
        2 * 10**9,
        10**9,
        21_000 * 10**9,
        0,
    )
    assert all(type(v) is int for v in (s.amount, s.max_fee_per_gas, s.max_priority_fee_per_gas, s.fee))
    assert s.asset == "ETH"


def test_sweep_tx_without_priority_fee_or_receipt_keeps_none():
    s = SweepTxRecord.from_row({**SWEEP_TX_ROW, "max_priority_fee_per_gas": None, "fee": None})
    assert s.max_priority_fee_per_gas is None and s.fee is None  # legacy gas price; not mined yet


WATCHED_ROW = {
    "id": 41,
    "chain_id": 31337,
    "address": ADDRESS,
    "merchant_id": "mch_1",
    "payment_id": "pay_1",
    "derivation_index": 7,
    "from_block": 990,
    "created_at": NOW,
    "txid": 123_456,
    "confirmations_required": 2,
}


@pytest.mark.parametrize("row", both_rows(WATCHED_ROW), ids=["sqlalchemy", "asyncpg"])
def test_watched_address_from_row(row):
    assert WatchedAddressRecord.from_row(row) == WatchedAddressRecord(
        id=41, chain_id=31337, address=ADDRESS, payment_id="pay_1", from_block=990, created_at=NOW
    )


@pytest.mark.parametrize(
    ("build", "table", "row"),
    [
        (PaymentRecord.from_row, models.PAYMENTS, PAYMENT_ROW),
        (PaymentOptionRecord.from_row, models.PAYMENT_OPTIONS, OPTION_ROW),
        (TransferRecord.from_row, models.TRANSFERS, TRANSFER_ROW),
        (lambda r: MerchantRecord.from_row(r, {}), models.MERCHANTS, MERCHANT_ROW),
        (SweepTxRecord.from_row, models.SWEEP_TRANSACTIONS, SWEEP_TX_ROW),
        (WatchedAddressRecord.from_row, models.DEPOSIT_ADDRESSES, WATCHED_ROW),
    ],
    ids=["payments", "payment_options", "transfers", "merchants", "sweep_transactions", "deposit_addresses"],
)
def test_the_rows_here_are_the_tables_rows_so_from_row_reads_only_real_columns(build, table, row):
    """Each sample row has exactly its table's columns (models.py), and from_row needs
    no other key: a SELECT * (or a RETURNING of every column) is enough."""
    assert set(row) == {c.name for c in table.c}
    build(row)
