"""Plain types the sweeper works with (translated from/to protobuf at the edges)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class TxKind(StrEnum):
    GAS_TOPUP = "gas_topup"
    SWEEP = "sweep"
    PAYOUT = "payout"  # a refund's or payout's transfer to its destination


class TxState(StrEnum):
    SIGNED = "signed"
    BROADCAST = "broadcast"
    MINED = "mined"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    REPLACED = "replaced"


# States in which a transaction may still be (or become) the one mined for its nonce.
OPEN_STATES = frozenset({TxState.SIGNED, TxState.BROADCAST, TxState.MINED})


@dataclass(frozen=True, order=True)
class SweepJobKey:
    """What names a sweep job: one payment's funds in one asset on one chain.

    A payment may accept several (chain, asset) options on one deposit address, so
    it may have several jobs, even on one chain (ETH and TUSD); each is claimed,
    recorded, completed and released on its own, and everything the sweeper keeps
    per job (sweeps in flight, hold-backs, the journal) is keyed by this."""

    payment_id: str
    chain_id: int
    asset: str

    def __str__(self) -> str:
        return f"{self.payment_id}/{self.chain_id}/{self.asset}"


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
    # The asset of the sweep job it belongs to (a gas top-up's: the job it tops up for);
    # "" from a ledger older than sweep jobs per asset: the payment's own.
    asset: str = ""

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def fee_cost(self) -> int:
        """The most this transaction can cost in native coin (gas limit x fee cap)."""
        return self.gas_limit * self.max_fee_per_gas


@dataclass
class Job:
    """A sweep job leased to this sweeper (ledger SweepJob): one payment's funds in one
    asset on one chain, named by `key`. `transactions` are only the job's own: the
    ones given that belong to another job of the same payment (`owns`) are dropped
    when the job is made, so they are never resumed, rebroadcast or completed here."""

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

    def __post_init__(self) -> None:
        self.transactions = [t for t in self.transactions if self.owns(t)]

    @property
    def is_native(self) -> bool:
        return not self.token_address

    @property
    def key(self) -> SweepJobKey:
        return SweepJobKey(self.payment_id, self.chain_id, self.asset)

    def owns(self, tx: RecordedTx) -> bool:
        """`tx` is one of this job's transactions (not another job's of the same payment).
        A transaction without an asset comes from a ledger with one job per payment."""
        return tx.payment_id == self.payment_id and tx.chain_id in (0, self.chain_id) and tx.asset in ("", self.asset)


@dataclass
class PayoutJob:
    """A refund or payout leased to this sweeper (ledger PayoutJob): send `amount` of one
    asset from `source_address` (the key at `source_path`: a refunded payment's deposit
    address or the merchant's payout wallet) to `destination`, exactly once.
    `transactions` are its recorded ones (kind PAYOUT or GAS_TOPUP), oldest first; their
    `payment_id` holds the payout's id."""

    payout_id: str
    merchant_id: str
    kind: str  # refund | payout
    payment_id: str  # the refunded payment; "" for a payout
    chain_id: int
    asset: str
    token_address: str  # "" for native coin
    amount: int
    fee_from_amount: bool  # native, from a deposit address: it is emptied, the fee comes out of the amount
    destination: str
    source_address: str
    source_path: str
    from_deposit: bool
    attempts: int = 0
    transactions: list[RecordedTx] = field(default_factory=list)

    @property
    def is_native(self) -> bool:
        return not self.token_address

    @property
    def label(self) -> str:
        return f"{self.kind} {self.payout_id}"


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

    def as_recorded(self, key: SweepJobKey) -> RecordedTx:
        """As the ledger records it for the job `key` (SIGNED)."""
        return RecordedTx(
            payment_id=key.payment_id,
            chain_id=key.chain_id,
            asset=key.asset,
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
