"""The sweeper's seams: what its use cases ask of one chain and of the ledger.

Protocols only, in plain records (domain/model.py): adapters/chain_rpc.py
(RpcChainGateway) and adapters/ledger_client.py (LedgerClient) implement them
over JSON-RPC and gRPC; the unit tests implement them with fakes
(tests/unit/sweeper_fakes.py). The use cases (chain_sweeper, payment_sweep,
transfer_strategies, gas_wallet, settler, journal) depend on these and nothing
wider.
"""

from __future__ import annotations

from typing import Protocol

from services.sweeper.domain.fees import FeeQuote
from services.sweeper.domain.model import Job, PayoutJob, RecordedTx, SignedTx, SweepJobKey, TxState
from services.sweeper.domain.send_errors import SendOutcome


class ChainGateway(Protocol):
    """One chain, as the sweeper reads it and sends to it. Failures propagate as the
    shared RPC errors (services/common/evm_rpc.py: RpcUnavailable, RpcError,
    MalformedResponse) and the gateway's FeeCapExceeded / L1FeeUnavailable."""

    @property
    def chain_id(self) -> int: ...

    async def served_chain_id(self) -> int:
        """The chain id the endpoint really serves."""
        ...

    async def head(self, fresh: bool = False) -> int: ...

    async def next_base_fee(self) -> int:
        """The next block's base fee (0 on legacy chains)."""
        ...

    async def fee_quote(self) -> FeeQuote:
        """What to pay per gas now (with the L1 data fee reserve where the chain charges one)."""
        ...

    async def balance(self, address: str, block: str = "latest") -> int: ...

    async def nonce(self, address: str, block: str = "latest") -> int: ...

    async def is_contract(self, address: str) -> bool: ...

    async def token_balance(self, token: str, owner: str) -> int: ...

    async def estimate_gas(self, sender: str, to: str, data: bytes = b"", value: int = 0) -> int: ...

    async def send(self, raw_tx: bytes) -> tuple[SendOutcome, str]:
        """Broadcast; the node's answer classified, with its message."""
        ...

    async def known(self, tx_hash: str) -> bool:
        """The node has the transaction (pending or mined)."""
        ...

    async def receipt(self, tx_hash: str) -> dict | None:
        """The receipt of a mined transaction (None: not mined, as far as this node knows)."""
        ...


class SweepLedger(Protocol):
    """The ledger's SweepLedgerService as the sweeper's use cases call it. Failures
    are the shared domain errors (services/common/errors.py): Unavailable when the
    ledger cannot be reached, FailedPrecondition / NotFound when a lease is gone.
    Every call about one sweep job names it by its SweepJobKey (payment, chain, asset)."""

    async def claim(
        self, chain_id: int, worker_id: str, limit: int, lease_seconds: int, take_over: bool = False
    ) -> list[Job]:
        """Lease sweep jobs of the chain; each carries only its own recorded transactions.
        `take_over`: this worker has just become the chain's signer and takes the jobs
        another worker still holds too."""
        ...

    async def record(self, worker_id: str, job: SweepJobKey, tx: SignedTx) -> RecordedTx: ...

    async def update(
        self, tx_hash: str, state: TxState, block_number: int = 0, error: str = "", fee: int | None = None
    ) -> RecordedTx: ...

    async def complete(self, job: SweepJobKey, tx_hash: str, amount: int, fee: int) -> str: ...

    async def release(self, job: SweepJobKey, worker_id: str, error: str, retry_after_seconds: int) -> None: ...

    async def unsettled_transactions(self, chain_id: int, limit: int = 500) -> list[RecordedTx]:
        """The chain's recorded transactions still SIGNED or BROADCAST (oldest pages first)."""
        ...


class PayoutLedger(Protocol):
    """The ledger's PayoutLedgerService as the sweeper's use cases call it (errors as
    for SweepLedger). Every call about one refund or payout names it by its id."""

    async def claim_payouts(
        self, chain_id: int, worker_id: str, limit: int, lease_seconds: int, take_over: bool = False
    ) -> list[PayoutJob]:
        """Lease refunds and payouts of the chain to send (or resume); `take_over` as for claim."""
        ...

    async def record_payout_tx(self, worker_id: str, payout_id: str, tx: SignedTx) -> RecordedTx: ...

    async def update_payout_tx(
        self, tx_hash: str, state: TxState, block_number: int = 0, error: str = "", fee: int | None = None
    ) -> RecordedTx: ...

    async def complete_payout(self, payout_id: str, tx_hash: str, amount_sent: int, fee: int) -> None: ...

    async def fail_payout(self, payout_id: str, worker_id: str, reason: str) -> None: ...

    async def release_payout(self, payout_id: str, worker_id: str, error: str, retry_after_seconds: int) -> None: ...
