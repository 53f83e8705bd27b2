"""Plain records the repository returns and the transports translate.

Each stored record has a `from_row` constructor: it reads a database row by
column name, whether a SQLAlchemy Row (through its `_mapping`) or an asyncpg
Record (a mapping already), so the repository and any other reader build records
one way. Money columns (NUMERIC) arrive as Decimal and become int; nothing here
imports a database driver.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from services.ledger.domain.policy import Policy
from services.ledger.domain.pricing import Price, fiat_value, minimum_accepted, parse_price, parse_rate
from services.ledger.domain.status import (
    Amounts,
    OptionFacts,
    OptionStatus,
    PaymentStatus,
    Resolution,
    TransferFacts,
    funds_accounted,
    is_sweepable,
)


def _columns(row: Any) -> Mapping[str, Any]:
    """The row by column name: a SQLAlchemy Row's `_mapping`, or the row itself
    (an asyncpg Record, a dict)."""
    return getattr(row, "_mapping", row)


def _money(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class TransferRecord:
    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    from_address: str
    amount: int
    state: str
    credited: bool
    late: bool
    observed_at: datetime
    token_address: str | None = None  # None: the native coin
    asset: str = ""  # the symbol of the asset moved ("" only on rows older than migration 0003 that did not credit)
    kind: str = "payment"  # payment | gas_topup (the sweeper's own top-up of a token payment's address)
    after_quote_expiry: bool = False  # mined after the payment's quote lock window ended

    @classmethod
    def from_row(cls, row: Any) -> TransferRecord:
        """From a `transfers` row (observed_at is the row's created_at)."""
        row = _columns(row)
        return cls(
            chain_id=row["chain_id"],
            tx_hash=row["tx_hash"],
            log_index=row["log_index"],
            block_number=row["block_number"],
            block_hash=row["block_hash"],
            from_address=row["from_address"],
            amount=int(row["amount"]),
            state=row["state"],
            credited=row["credited"],
            late=row["late"],
            observed_at=row["created_at"],
            token_address=row["token_address"],
            asset=row["asset"],
            kind=row["kind"],
            after_quote_expiry=row["after_quote_expiry"],
        )


@dataclass(frozen=True)
class QuoteRecord:
    """The rate a priced payment's amount due was computed at, locked until expires_at."""

    asset: str
    currency: str
    rate: Decimal  # currency units per whole unit of the asset, exact
    source: str
    observed_at: datetime
    quoted_at: datetime
    expires_at: datetime

    @cached_property
    def json_text(self) -> str:
        """to_json as JSON text, made once per quote (every save of every option writes it)."""
        return json.dumps(self.to_json())

    def to_json(self) -> dict[str, str]:
        return {
            "asset": self.asset,
            "currency": self.currency,
            "rate": str(self.rate),
            "source": self.source,
            "observed_at": self.observed_at.isoformat(),
            "quoted_at": self.quoted_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuoteRecord:
        return cls(
            asset=data["asset"],
            currency=data["currency"],
            rate=parse_rate(data["rate"]),
            source=data["source"],
            observed_at=datetime.fromisoformat(data["observed_at"]),
            quoted_at=datetime.fromisoformat(data["quoted_at"]),
            expires_at=datetime.fromisoformat(data["expires_at"]),
        )


@dataclass
class PaymentOptionRecord:
    """One way to pay a payment (payment_options): an asset on a chain, its amount due,
    quote, the amounts derived for it and its sweep figures."""

    position: int
    chain_id: int
    asset: str
    token_address: str | None
    decimals: int
    amount_due: int
    confirmations_required: int
    quote: QuoteRecord | None = None
    amount_received: int = 0
    amount_confirmed: int = 0
    amount_swept: int = 0
    sweep_fee: int = 0
    sweep_dust: int = 0
    status: OptionStatus = OptionStatus.AWAITING
    sweep_tx_hash: str = ""
    selected: bool = False  # derived: the option the payment's headline shows
    amount_refunded: int = 0  # confirmed refunds of the option, any source
    deposit_refunded: int = 0  # of which paid from the deposit address
    deposit_refund_fee: int = 0  # native coin those refunds paid the network from the deposit address

    @property
    def is_native(self) -> bool:
        return self.token_address is None

    @property
    def amount_accounted(self) -> int:
        """Confirmed funds the option's completed sweeps and deposit refunds dealt with
        (status.funds_accounted)."""
        return funds_accounted(
            native=self.is_native,
            swept=self.amount_swept,
            fee=self.sweep_fee,
            dust=self.sweep_dust,
            refunded=self.deposit_refunded,
            refund_fee=self.deposit_refund_fee,
        )

    @classmethod
    def from_row(cls, row: Any) -> PaymentOptionRecord:
        """From a `payment_options` row."""
        row = _columns(row)
        return cls(
            position=row["position"],
            chain_id=row["chain_id"],
            asset=row["asset"],
            token_address=row["token_address"],
            decimals=row["decimals"],
            amount_due=int(row["amount_due"]),
            confirmations_required=row["confirmations_required"],
            quote=None if row["quote"] is None else QuoteRecord.from_json(_json(row["quote"])),
            amount_received=int(row["amount_received"]),
            amount_confirmed=int(row["amount_confirmed"]),
            amount_swept=int(row["amount_swept"]),
            sweep_fee=int(row["sweep_fee"]),
            sweep_dust=int(row["sweep_dust"]),
            status=OptionStatus(row["status"]),
            sweep_tx_hash=row["sweep_tx_hash"],
            amount_refunded=int(row["amount_refunded"]),
            deposit_refunded=int(row["deposit_refunded"]),
            deposit_refund_fee=int(row["deposit_refund_fee"]),
        )


@dataclass
class PaymentRecord:
    id: str
    merchant_id: str
    chain_id: int
    asset: str
    token_address: str | None
    decimals: int
    amount_due: int
    amount_received: int
    amount_confirmed: int
    amount_swept: int
    status: PaymentStatus
    late: bool
    merchant_order_id: str
    metadata: dict[str, str]
    deposit_address: str
    derivation_index: int
    derivation_path: str
    confirmations_required: int
    version: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    expired_at: datetime | None
    cancelled_at: datetime | None
    sweep_tx_hash: str
    request_fingerprint: str = ""
    transfers: list[TransferRecord] = field(default_factory=list)
    sweep_fee: int = 0  # native coin the completed sweeps paid the network
    sweep_dust: int = 0  # native payments: coin set aside for sweep fees, unused, left at the deposit address
    price: Price | None = None  # None: priced in base units
    quote: QuoteRecord | None = None  # set exactly when price is
    tolerance_bps: int = 0  # the policy in force: underpayment tolerance
    watch_until: datetime | None = None  # the policy in force: expires_at + watch_after_expiry
    resolution: Resolution | None = None
    resolution_note: str = ""
    resolved_at: datetime | None = None
    # Every way to pay it, in position order (at least one); the headline fields
    # above (chain_id ... sweep_dust, quote, confirmations_required) are the
    # selected option's (payment_state.show_option).
    options: list[PaymentOptionRecord] = field(default_factory=list)
    checkout_token: str = ""  # the public page's token (never the id)
    description: str = ""
    return_url: str = ""

    @property
    def is_native(self) -> bool:
        return self.token_address is None

    def option(self, chain_id: int, asset: str) -> PaymentOptionRecord | None:
        """The option of this chain and asset symbol, if the payment accepts it."""
        return next((o for o in self.options if o.chain_id == chain_id and o.asset == asset), None)

    def option_for(self, chain_id: int, token_address: str | None) -> PaymentOptionRecord | None:
        """The option a transfer of this token (None: the native coin) on this chain pays."""
        token = token_address or None
        return next((o for o in self.options if o.chain_id == chain_id and o.token_address == token), None)

    def depth_on(self, chain_id: int) -> int:
        """The confirmations the payment's transfers on this chain wait for."""
        return next(
            (o.confirmations_required for o in self.options if o.chain_id == chain_id), self.confirmations_required
        )

    def option_minimum(self, option: PaymentOptionRecord) -> int:
        """The least confirmed amount that pays the payment on this option."""
        return minimum_accepted(option.amount_due, self.tolerance_bps)

    def option_value(self, option: PaymentOptionRecord, units: int) -> Decimal | None:
        """What `units` base units of the option's asset are worth at its locked quote,
        rounded down to the currency's minor unit; None when not priced."""
        if self.price is None or option.quote is None:
            return None
        return fiat_value(units, option.decimals, option.quote.rate, self.price.currency.minor_units)

    def transfer_option(self, transfer: TransferRecord) -> PaymentOptionRecord | None:
        """The option a recorded transfer counts for (None: not credited)."""
        return self.option_for(transfer.chain_id, transfer.token_address) if transfer.credited else None

    def transfer_facts(self) -> list[TransferFacts]:
        """The payment's transfers as the status rules see them, in recorded order."""
        positions = {(o.chain_id, o.token_address): i for i, o in enumerate(self.options)}
        facts = []
        for t in self.transfers:
            index = positions.get((t.chain_id, t.token_address or None))
            facts.append(TransferFacts(t.amount, t.state, t.credited and index is not None, t.late, index or 0))
        return facts

    def option_facts(self) -> list[OptionFacts]:
        return [OptionFacts(o.amount_due, self.option_minimum(o), o.amount_accounted) for o in self.options]

    def option_sweepable(self, option: PaymentOptionRecord) -> bool:
        """Confirmed funds on this option that will not change any more and no sweep
        has dealt with yet (domain/status.is_sweepable): the sweeper may claim it."""
        return is_sweepable(
            self.status,
            expired=self.expired_at is not None,
            confirmed=option.amount_confirmed,
            accounted=option.amount_accounted,
            accepted=self.resolution is Resolution.ACCEPTED,
        )

    @property
    def amounts(self) -> Amounts:
        """The derived sums as stored (payment_state.py keeps them current)."""
        return Amounts(received=self.amount_received, confirmed=self.amount_confirmed, late=self.late)

    @property
    def amount_minimum(self) -> int:
        """The least confirmed amount that makes the payment CONFIRMED."""
        return minimum_accepted(self.amount_due, self.tolerance_bps)

    @classmethod
    def from_row(cls, row: Any) -> PaymentRecord:
        """From a `payments` row (transfers are loaded separately). `metadata` is
        JSONB: a dict through SQLAlchemy, JSON text through a raw asyncpg connection."""
        row = _columns(row)
        metadata = _json(row["metadata"])
        return cls(
            id=row["id"],
            merchant_id=row["merchant_id"],
            chain_id=row["chain_id"],
            asset=row["asset"],
            token_address=row["token_address"],
            decimals=row["decimals"],
            amount_due=int(row["amount_due"]),
            amount_received=int(row["amount_received"]),
            amount_confirmed=int(row["amount_confirmed"]),
            amount_swept=int(row["amount_swept"]),
            status=PaymentStatus(row["status"]),
            late=row["late"],
            merchant_order_id=row["merchant_order_id"],
            metadata=metadata or {},
            deposit_address=row["deposit_address"],
            derivation_index=row["derivation_index"],
            derivation_path=row["derivation_path"],
            confirmations_required=row["confirmations_required"],
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            expires_at=row["expires_at"],
            expired_at=row["expired_at"],
            cancelled_at=row["cancelled_at"],
            sweep_tx_hash=row["sweep_tx_hash"],
            request_fingerprint=row["request_fingerprint"],
            sweep_fee=int(row["sweep_fee"]),
            sweep_dust=int(row["sweep_dust"]),
            price=(
                None
                if row["price_currency"] is None
                else parse_price(row["price_currency"], _plain(row["price_amount"]))
            ),
            quote=None if row["quote"] is None else QuoteRecord.from_json(_json(row["quote"])),
            tolerance_bps=row["underpayment_tolerance_bps"],
            watch_until=row["watch_until"],
            resolution=None if row["resolution"] is None else Resolution(row["resolution"]),
            resolution_note=row["resolution_note"],
            resolved_at=row["resolved_at"],
            checkout_token=row["checkout_token"],
            description=row["description"],
            return_url=row["return_url"],
        )


def _plain(value: Any) -> str:
    """A NUMERIC read back (Decimal, trailing zeros kept as stored) as the plain string it was written as."""
    text = format(Decimal(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@dataclass
class PaymentLinkRecord:
    """A reusable payment page (payment_links): a fixed price, or bounds on the amount
    a visitor enters, all in one currency."""

    id: str
    merchant_id: str
    token: str
    description: str
    currency: str
    price: Price | None  # fixed price; None: the visitor enters the amount
    min_price: Price | None
    max_price: Price | None
    options: list[tuple[int, str]]
    accept_all: bool
    accept_chain_ids: list[int]
    expires_at: datetime | None
    max_uses: int  # 0: no limit
    uses: int
    return_url: str
    active: bool
    created_at: datetime
    request_fingerprint: str = ""

    @classmethod
    def from_row(cls, row: Any) -> PaymentLinkRecord:
        """From a `payment_links` row."""
        row = _columns(row)

        def price(column: str) -> Price | None:
            value = row[column]
            return None if value is None else parse_price(row["currency"], _plain(value))

        return cls(
            id=row["id"],
            merchant_id=row["merchant_id"],
            token=row["token"],
            description=row["description"],
            currency=row["currency"],
            price=price("price_amount"),
            min_price=price("min_amount"),
            max_price=price("max_amount"),
            options=[(int(c), str(a)) for c, a in _json(row["options"])],
            accept_all=row["accept_all"],
            accept_chain_ids=[int(c) for c in _json(row["accept_chain_ids"])],
            expires_at=row["expires_at"],
            max_uses=row["max_uses"],
            uses=row["uses"],
            return_url=row["return_url"],
            active=row["active"],
            created_at=row["created_at"],
            request_fingerprint=row["request_fingerprint"],
        )


@dataclass
class MerchantRecord:
    id: str
    name: str
    status: str
    api_key_prefix: str
    webhook_url: str
    webhook_secret: str
    xpub: str
    derivation_path: str
    next_address_index: int
    created_at: datetime
    treasuries: dict[int, str] = field(default_factory=dict)
    payment_policy: Policy = field(default_factory=Policy)

    @classmethod
    def from_row(cls, row: Any, treasuries: dict[int, str]) -> MerchantRecord:
        """From a `merchants` row and the merchant's treasuries (chain id -> address)."""
        row = _columns(row)
        return cls(
            id=row["id"],
            name=row["name"],
            status=row["status"],
            api_key_prefix=row["api_key_prefix"],
            webhook_url=row["webhook_url"],
            webhook_secret=row["webhook_secret"],
            xpub=row["xpub"],
            derivation_path=row["derivation_path"],
            next_address_index=row["next_address_index"],
            created_at=row["created_at"],
            treasuries=treasuries,
            payment_policy=Policy.from_json(_json(row["payment_policy"])),
        )


def _json(value: Any) -> Any:
    """JSONB: a dict through SQLAlchemy, JSON text through a raw asyncpg connection."""
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class SweepTxRecord:
    payment_id: str
    merchant_id: str
    chain_id: int
    kind: str
    state: str
    tx_hash: str
    raw_tx: bytes
    nonce: int
    from_address: str
    to_address: str
    amount: int
    token_address: str | None
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int | None
    block_number: int
    error: str
    replaces_tx_hash: str
    created_at: datetime
    updated_at: datetime
    id: int = 0
    fee: int | None = None  # what it paid the network per its receipt; None until mined
    l1_fee_reserve: int = 0  # native coin left aside for an OP-stack L1 data fee when signed
    asset: str = ""  # the sweep job's (payment option's) asset; a top-up's is the token it tops up for

    @classmethod
    def from_row(cls, row: Any) -> SweepTxRecord:
        """From a `sweep_transactions` row."""
        row = _columns(row)
        return cls(
            id=row["id"],
            payment_id=row["payment_id"],
            merchant_id=row["merchant_id"],
            chain_id=row["chain_id"],
            kind=row["kind"],
            state=row["state"],
            tx_hash=row["tx_hash"],
            raw_tx=row["raw_tx"],
            nonce=row["nonce"],
            from_address=row["from_address"],
            to_address=row["to_address"],
            amount=int(row["amount"]),
            token_address=row["token_address"],
            gas_limit=row["gas_limit"],
            max_fee_per_gas=int(row["max_fee_per_gas"]),
            max_priority_fee_per_gas=_money(row["max_priority_fee_per_gas"]),
            block_number=row["block_number"],
            error=row["error"],
            replaces_tx_hash=row["replaces_tx_hash"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            fee=_money(row["fee"]),
            l1_fee_reserve=int(row["l1_fee_reserve"]),
            asset=row["asset"],
        )


@dataclass
class SweepJobRecord:
    payment: PaymentRecord
    option: PaymentOptionRecord  # the job: this option's funds
    treasury_address: str
    lease_until: datetime
    attempts: int
    transactions: list[SweepTxRecord]


@dataclass
class WatchedAddressRecord:
    id: int
    chain_id: int
    address: str
    payment_id: str
    from_block: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> WatchedAddressRecord:
        """From a `deposit_addresses` row (or a select of its feed columns)."""
        row = _columns(row)
        return cls(
            id=row["id"],
            chain_id=row["chain_id"],
            address=row["address"],
            payment_id=row["payment_id"],
            from_block=row["from_block"],
            created_at=row["created_at"],
        )


@dataclass
class PaymentEventRecord:
    """An event about to be written to the outbox."""

    event_id: str
    event_type: str
    payment: PaymentRecord
    previous_status: PaymentStatus | None
    created_at: datetime
