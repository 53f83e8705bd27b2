"""One refund's or payout's send (a PayoutJob), from the checks through recovery to
CompletePayout, or FailPayout when it can never be sent as asked.

1. Check before anything is signed: the asset is in the sweeper's chains.yaml with
   the same token address; the key derived at the job's `source_path` is its
   `source_address` (the refunded payment's deposit address, or the merchant's
   payout wallet at <merchant derivation path>/1/0); the destination is not the
   zero address, the source or the token contract.
2. Recover first: every payout transaction the ledger recorded that may still be
   mined is settled (rebroadcast, waited for, fee-bumped: the same signed content,
   never another). One mined deep enough completes the payout.
3. Otherwise the asset's transfer strategy signs it (ExactNativeTransfer; a deposit
   refund of everything a native option holds: NativeCoinTransfer, the fee out of
   the amount; TokenTransfer with gas top-ups from the gas wallet), the journal
   records it write-ahead, the settler drives it to the chain's depth, the ledger
   is told what reached the destination and the fee.

A payout whose source cannot pay it (InsufficientFunds), or whose transaction
reverted, ends FAILED with the reason: nothing left the source for it. Anything
else that stops it raises, and the chain's sweeper releases it through the table
in releases.py, to be retried.
"""

from __future__ import annotations

from dataclasses import replace

from services.common.chains import ChainConfig
from services.common.failpoints import failpoint
from services.sweeper.adapters.key_store import KeyStore
from services.sweeper.domain.model import PayoutJob, SignedTx, TxKind, TxState
from services.sweeper.domain.policy import SweepPolicy, destination_problem
from services.sweeper.domain.receipts import fee_paid
from services.sweeper.domain.recovery import TxGroup, open_groups
from services.sweeper.domain.settlement import Failed, Mined
from services.sweeper.gas_wallet import GasWallet
from services.sweeper.journal import PayoutJournal
from services.sweeper.payment_sweep import checked_key, configured_asset
from services.sweeper.ports import ChainGateway, PayoutLedger
from services.sweeper.settings import SweepConfig
from services.sweeper.settler import Settler
from services.sweeper.transfer_strategies import (
    ExactNativeTransfer,
    InsufficientFunds,
    NativeCoinTransfer,
    TokenTransfer,
    Transfer,
    TransferStrategy,
)


class PayoutSend:
    """Sends one leased refund or payout (`run`); raises when it must be retried."""

    def __init__(
        self,
        job: PayoutJob,
        *,
        chain: ChainConfig,
        gateway: ChainGateway,
        ledger: PayoutLedger,
        keys: KeyStore,
        gas_wallet: GasWallet,
        policy: SweepPolicy,
        config: SweepConfig,
        journal: PayoutJournal,
        settler: Settler,
        worker_id: str,
        log,
    ) -> None:
        self.job = job
        self._chain = chain
        self._gateway = gateway
        self._ledger = ledger
        self._keys = keys
        self._gas_wallet = gas_wallet
        self._policy = policy
        self._cfg = config
        self._journal = journal
        self._settler = settler
        self._worker_id = worker_id
        self._log = log

    async def run(self) -> None:
        job = self.job
        asset = configured_asset(self._chain, job.asset, job.token_address, self._cfg)
        problem = destination_problem(job.destination, source=job.source_address, token_address=job.token_address)
        if problem:
            await self._fail(f"refused before signing: {problem}")
            return
        strategy = self._strategy(
            Transfer(
                chain_id=job.chain_id,
                key=checked_key(
                    self._keys,
                    job.source_path,
                    job.source_address,
                    "the deposit address" if job.from_deposit else "the merchant's payout wallet",
                    self._cfg,
                    self._log,
                ),
                symbol=asset.symbol,
                token_address=job.token_address,
                amount=job.amount,
                destination=job.destination,
            )
        )
        for group in open_groups(job.transactions, TxKind.PAYOUT):
            self._log.info("resuming a recorded payout", nonce=group.nonce, tx_hash=group.latest.tx_hash)
            settled = await self._settler.settle(group, strategy)
            if isinstance(settled, Mined):
                await self._complete(settled)
                return
            self._log.warning("recorded payout will not be mined", reason=settled.reason)
        if any(t.kind is TxKind.PAYOUT and t.state is TxState.CONFIRMED for t in job.transactions):
            return  # completed before a crash; the ledger already knows (CompletePayout is idempotent)
        try:
            signed = await strategy.sign()
        except InsufficientFunds as exc:
            wallet = "the deposit address" if job.from_deposit else "the merchant's payout wallet"
            await self._fail(f"insufficient funds in {wallet}: {exc}; nothing was sent")
            return
        recorded = await self._journal.record(signed)
        settled = await self._settler.settle(TxGroup.of(recorded), strategy)
        if isinstance(settled, Failed):
            await self._fail(f"{strategy.label} failed: {settled.reason}; nothing was sent")
            return
        await self._complete(settled)

    def _strategy(self, transfer: Transfer) -> TransferStrategy:
        if transfer.token_address:
            return TokenTransfer(
                transfer,
                gateway=self._gateway,
                journal=self._journal,
                settler=self._settler,
                gas_wallet=self._gas_wallet,
                policy=self._policy,
                config=self._cfg,
                log=self._log,
                kind=TxKind.PAYOUT,
            )
        if self.job.fee_from_amount:
            return _EmptyingTransfer(
                transfer, gateway=self._gateway, policy=self._policy, config=self._cfg, log=self._log
            )
        return ExactNativeTransfer(transfer, gateway=self._gateway, config=self._cfg, log=self._log)

    async def _fail(self, reason: str) -> None:
        self._log.warning("payout failed", reason=reason)
        await self._ledger.fail_payout(self.job.payout_id, self._worker_id, reason)

    async def _complete(self, settled: Mined) -> None:
        tx, receipt = settled.tx, settled.receipt
        for topup in self.job.transactions:
            if topup.kind is TxKind.GAS_TOPUP and topup.state is TxState.MINED:
                await self._journal.update(topup, TxState.CONFIRMED, topup.block_number)
        fee = fee_paid(receipt, tx.max_fee_per_gas)
        failpoint("sweeper.before_complete.payout")  # mined deep enough, the ledger not yet told
        await self._ledger.complete_payout(self.job.payout_id, tx.tx_hash, tx.amount, fee)
        tx.state = TxState.CONFIRMED
        self._log.info("payout sent", tx_hash=tx.tx_hash, amount=str(tx.amount), fee=str(fee), kind=self.job.kind)


class _EmptyingTransfer(NativeCoinTransfer):
    """A refund of everything a native option holds at its deposit address: the address
    ends at zero and the fee comes out of the amount (NativeCoinTransfer), signed as a
    payout transaction."""

    label = "refund transaction"

    async def sign(self) -> SignedTx:
        return replace(await super().sign(), kind=TxKind.PAYOUT)
