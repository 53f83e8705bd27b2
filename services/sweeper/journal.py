"""The write-ahead record of one sweep job's transactions in the ledger.

Guarantees: a signed transaction is recorded in the ledger (raw bytes, hash,
nonce, fees: RecordSweepTransaction) before any node sees it, and only while this
replica holds the chain's signer lease; every state it reaches afterwards
(BROADCAST, MINED, FAILED, ...) is written to the ledger before the sweep acts on
it. So a crash at any point leaves the ledger knowing every transaction that may
be mined, and the next signer resumes with the same signed bytes.

Crash tests kill the process at the failpoints here (services/common/failpoints.py):
`sweeper.after_sign_before_record.<kind>` once a transaction is signed (the signed
bytes exist only in this process), `sweeper.after_record_before_broadcast[.<kind>]`
once it is recorded, `sweeper.after_broadcast[.<kind>]` once a node accepted it
(kind: sweep, gas_topup, payout).

A sweep job's journal (PaymentJournal) writes to SweepLedgerService; a refund's or
payout's (PayoutJournal) to PayoutLedgerService, with the same guarantees.
"""

from __future__ import annotations

from collections.abc import Callable

from services.common.failpoints import failpoint
from services.sweeper import metrics
from services.sweeper.domain.model import Job, PayoutJob, RecordedTx, SignedTx, TxKind, TxState
from services.sweeper.domain.releases import ReleaseCategory
from services.sweeper.domain.send_errors import SendOutcome
from services.sweeper.ports import ChainGateway, PayoutLedger, SweepLedger
from services.sweeper.releases import ReleasePayment


class PaymentJournal:
    """One sweep job's transactions (its SweepJobKey: payment, chain, asset; another job
    of the same payment has a journal of its own): recorded, broadcast and updated
    through the ledger. `job.transactions` is kept in step with what the ledger holds."""

    def __init__(
        self,
        *,
        job: Job,
        ledger: SweepLedger,
        gateway: ChainGateway,
        worker_id: str,
        may_sign: Callable[[], bool],
        label: str,
        log,
    ) -> None:
        self.job: Job | PayoutJob = job
        self._ledger = ledger
        self._gateway = gateway
        self._worker_id = worker_id
        self._may_sign = may_sign
        self._label = label
        self._log = log

    @property
    def transactions(self) -> list[RecordedTx]:
        return self.job.transactions

    def may_sign(self) -> bool:
        """This replica holds the chain's signer lease (services/common/lease.py: `held`)."""
        return self._may_sign()

    async def record(self, signed: SignedTx) -> RecordedTx:
        """Write-ahead: the signed bytes are in the ledger before any node sees them."""
        if not self._may_sign():
            raise ReleasePayment(
                "this replica lost the chain's signer lease; the new signer resumes the payment",
                1,
                ReleaseCategory.STOPPING,
            )
        failpoint(f"sweeper.after_sign_before_record.{signed.kind.value}")
        recorded = await self._write_record(signed)
        metrics.TRANSACTIONS.labels(self._label, signed.kind.value).inc()
        self.job.transactions.append(recorded)
        self._log.info(
            "transaction recorded",
            kind=signed.kind.value,
            tx_hash=signed.tx_hash,
            nonce=signed.nonce,
            amount=str(signed.amount),
            max_fee_per_gas=str(signed.max_fee_per_gas),
            replaces=signed.replaces_tx_hash or None,
        )
        failpoint("sweeper.after_record_before_broadcast")
        failpoint(f"sweeper.after_record_before_broadcast.{signed.kind.value}")
        return recorded

    async def broadcast(self, tx: RecordedTx) -> tuple[SendOutcome, str]:
        """Send the recorded bytes; once a node has them, the ledger says BROADCAST."""
        outcome, message = await self._gateway.send(tx.raw_tx)
        if outcome in (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN):
            failpoint("sweeper.after_broadcast")
            failpoint(f"sweeper.after_broadcast.{tx.kind.value}")
            if tx.state is TxState.SIGNED:
                await self.update(tx, TxState.BROADCAST)
        return outcome, message

    async def update(
        self, tx: RecordedTx, state: TxState, block_number: int = 0, error: str = "", fee: int | None = None
    ) -> None:
        """The ledger first, then the local copy (`fee`: per the receipt; None keeps it)."""
        await self._write_update(tx.tx_hash, state, block_number, error, fee)
        tx.state = state
        if block_number:
            tx.block_number = block_number
        if error:
            tx.error = error
        if fee is not None:
            tx.fee = fee

    async def _write_record(self, signed: SignedTx) -> RecordedTx:
        assert isinstance(self.job, Job)
        return await self._ledger.record(self._worker_id, self.job.key, signed)

    async def _write_update(self, tx_hash: str, state: TxState, block_number: int, error: str, fee: int | None) -> None:
        await self._ledger.update(tx_hash, state, block_number, error, fee)


class PayoutJournal(PaymentJournal):
    """One refund's or payout's transactions, recorded and updated through the ledger's
    PayoutLedgerService (the same write-ahead rules as a sweep job's). `on_mined` is
    called once its payout transaction is in a block: its source's next nonce is then
    free for the next payout, which need not wait for this one's confirmations."""

    def __init__(
        self,
        *,
        job: PayoutJob,
        ledger: PayoutLedger,
        gateway: ChainGateway,
        worker_id: str,
        may_sign: Callable[[], bool],
        label: str,
        log,
        on_mined: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            job=job,  # type: ignore[arg-type]
            ledger=None,  # type: ignore[arg-type]
            gateway=gateway,
            worker_id=worker_id,
            may_sign=may_sign,
            label=label,
            log=log,
        )
        self.payout = job
        self._payouts = ledger
        self._on_mined = on_mined

    async def update(
        self, tx: RecordedTx, state: TxState, block_number: int = 0, error: str = "", fee: int | None = None
    ) -> None:
        await super().update(tx, state, block_number, error, fee)
        if state is TxState.MINED and tx.kind is TxKind.PAYOUT and self._on_mined is not None:
            self._on_mined()

    async def _write_record(self, signed: SignedTx) -> RecordedTx:
        return await self._payouts.record_payout_tx(self._worker_id, self.payout.payout_id, signed)

    async def _write_update(self, tx_hash: str, state: TxState, block_number: int, error: str, fee: int | None) -> None:
        await self._payouts.update_payout_tx(tx_hash, state, block_number, error, fee)
