"""Plain types the sweeper works with (translated from/to protobuf at the edges)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class TxKind(StrEnum):
    GAS_TOPUP = "gas_topup"
    SWEEP = "sweep"


class TxState(StrEnum):
    SIGNED = "signed"
    BROADCAST = "broadcast"
    MINED = "mined"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    REPLACED = "replaced"


# States in which a transaction may still be (or become) the one mined for its nonce.
OPEN_STATES = frozenset({TxState.SIGNED, TxState.BROADCAST, TxState.MINED})


@dataclass
class RecordedTx:
    """A sweep transaction as the ledger recorded it (write-ahead)."""

    payment_id: str
    chain_id: int
    kind: TxKind
    state: TxState
    tx_hash: str
    raw_tx: bytes
    nonce: int
    from_address: str
    to_address: str
    amount: int
    token_address: str
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int | None
    block_number: int = 0
    error: str = ""
    replaces_tx_hash: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    merchant_id: str = ""
    fee: int | None = None  # what it paid the network per its receipt, once mined
    l1_fee_reserve: int = 0  # native coin left aside for an OP-stack L1 data fee

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def fee_cost(self) -> int:
        """The most this transaction can cost in native coin (gas limit x fee cap)."""
        return self.gas_limit * self.max_fee_per_gas


@dataclass
class Job:
    """A payment leased to this sweeper (ledger SweepJob)."""

    payment_id: str
    merchant_id: str
    chain_id: int
    asset: str
    token_address: str  # "" for native coin
    deposit_address: str
    derivation_path: str
    amount: int
    treasury_address: str
    attempts: int = 0
    transactions: list[RecordedTx] = field(default_factory=list)

    @property
    def is_native(self) -> bool:
        return not self.token_address


@dataclass(frozen=True)
class SignedTx:
    """A transaction signed by the sweeper, not yet recorded."""

    kind: TxKind
    tx_hash: str
    raw_tx: bytes
    nonce: int
    from_address: str
    to_address: str  # the funds' recipient: treasury (sweep) or deposit address (top-up)
    amount: int
    token_address: str
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int | None
    replaces_tx_hash: str = ""
    l1_fee_reserve: int = 0  # the quote's L1 data fee reserve the transaction was priced with

    def as_recorded(self, payment_id: str, chain_id: int) -> RecordedTx:
        return RecordedTx(
            payment_id=payment_id,
            chain_id=chain_id,
            kind=self.kind,
            state=TxState.SIGNED,
            tx_hash=self.tx_hash,
            raw_tx=self.raw_tx,
            nonce=self.nonce,
            from_address=self.from_address,
            to_address=self.to_address,
            amount=self.amount,
            token_address=self.token_address,
            gas_limit=self.gas_limit,
            max_fee_per_gas=self.max_fee_per_gas,
            max_priority_fee_per_gas=self.max_priority_fee_per_gas,
            replaces_tx_hash=self.replaces_tx_hash,
            l1_fee_reserve=self.l1_fee_reserve,
        )


@dataclass(frozen=True)
class ChainStatus:
    """What the operator sees of one chain's sweeper (SweeperService.GetStatus)."""

    chain_id: int
    leader: bool  # this replica holds the chain's signer lease
    gas_wallet_address: str
    gas_wallet_balance: int | None  # None: the node did not answer in time
    in_flight: int
    last_error: str
    last_run_at: datetime | None
