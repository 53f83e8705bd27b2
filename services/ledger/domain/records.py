"""Plain records the repository returns and the transports translate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.ledger.domain.status import PaymentStatus, funds_accounted


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

    @property
    def is_native(self) -> bool:
        return self.token_address is None

    @property
    def amount_accounted(self) -> int:
        """Confirmed funds the completed sweeps dealt with (domain/status.funds_accounted)."""
        return funds_accounted(native=self.is_native, swept=self.amount_swept, fee=self.sweep_fee, dust=self.sweep_dust)


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


@dataclass
class SweepJobRecord:
    payment: PaymentRecord
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


@dataclass
class PaymentEventRecord:
    """An event about to be written to the outbox."""

    event_id: str
    event_type: str
    payment: PaymentRecord
    previous_status: PaymentStatus | None
    created_at: datetime
