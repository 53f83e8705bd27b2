"""One sweep job's sweep (a payment's funds in one asset on one chain, its
SweepJobKey), from the checks through recovery to CompleteSweep.

1. Check the job before anything is signed: the asset is in the sweeper's
   chains.yaml with the same token address; the treasury is set, checksummed,
   not the zero address, the deposit address or the token contract; the key
   derived at the ledger's `derivation_path` is the deposit address.
2. Recover first: every sweep the ledger recorded for the job that may still
   be mined is settled (rebroadcast, waited for, fee-bumped: the same signed
   content, never another). One that is mined deep enough completes the sweep.
3. Otherwise the asset's transfer strategy signs a new sweep, the journal records
   it write-ahead, the settler drives it to the chain's confirmation depth, and
   the ledger is told what reached the treasury and the fee (CompleteSweep).

Anything that prevents the sweep raises (ReleasePayment, or an adapter's error);
the chain's sweeper turns it into a release through the table in releases.py.
"""

from __future__ import annotations

from eth_utils import is_checksum_address

from services.common.chains import Asset, ChainConfig
from services.sweeper.adapters.key_store import DerivedKey, KeyError_, KeyStore
from services.sweeper.domain.model import Job, TxKind, TxState
from services.sweeper.domain.policy import SweepPolicy, treasury_problem
from services.sweeper.domain.receipts import fee_paid
from services.sweeper.domain.recovery import TxGroup, open_groups
from services.sweeper.domain.releases import ReleaseCategory, delay_text
from services.sweeper.domain.settlement import Failed, Mined
from services.sweeper.gas_wallet import GasWallet
from services.sweeper.journal import PaymentJournal
from services.sweeper.ports import ChainGateway, SweepLedger
from services.sweeper.releases import ReleasePayment
from services.sweeper.settings import SweepConfig
from services.sweeper.settler import Settler
from services.sweeper.transfer_strategies import NativeCoinTransfer, TokenTransfer, Transfer, TransferStrategy


class PaymentSweep:
    """Sweeps one claimed sweep job (`run`); raises when it cannot. It resumes only the
    job's own recorded transactions (`job.transactions`), never another job's."""

    def __init__(
        self,
        job: Job,
        *,
        chain: ChainConfig,
        gateway: ChainGateway,
        ledger: SweepLedger,
        keys: KeyStore,
        gas_wallet: GasWallet,
        policy: SweepPolicy,
        config: SweepConfig,
        journal: PaymentJournal,
        settler: Settler,
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
        self._log = log

    async def run(self) -> None:
        job = self.job
        asset = self._asset()
        treasury = job.treasury_address
        problem = treasury_problem(
            treasury,
            deposit_address=job.deposit_address,
            token_address=job.token_address,
            is_checksummed=is_checksum_address,
        )
        if problem:
            raise ReleasePayment(
                f"merchant {job.merchant_id} {problem} on chain {job.chain_id}: set one with "
                f"MerchantAdminService.SetTreasury, then SweeperService.SweepNow (retried in "
                f"{delay_text(self._cfg.config_retry)})",
                self._cfg.config_retry,
                ReleaseCategory.CONFIG,
            )
        key = self._deposit_key()
        strategy = self._strategy(
            Transfer(
                chain_id=job.chain_id,
                key=key,
                symbol=asset.symbol,
                token_address=job.token_address,
                amount=job.amount,
                destination=treasury,
            )
        )
        for group in open_groups(job.transactions, TxKind.SWEEP):
            self._log.info(
                "resuming a recorded sweep",
                nonce=group.nonce,
                tx_hash=group.latest.tx_hash,
                state=group.latest.state.value,
            )
            settled = await self._settler.settle(group, strategy)
            if isinstance(settled, Mined):
                await self._complete(settled)
                return
            self._log.warning("recorded sweep will not be mined; signing a new one", reason=settled.reason)
        signed = await strategy.sign()
        recorded = await self._journal.record(signed)
        settled = await self._settler.settle(TxGroup.of(recorded), strategy)
        if isinstance(settled, Failed):
            raise ReleasePayment(f"{strategy.label} failed: {settled.reason}", self._cfg.error_retry)
        await self._complete(settled)

    def _strategy(self, transfer: Transfer) -> TransferStrategy:
        if not transfer.token_address:
            return NativeCoinTransfer(
                transfer, gateway=self._gateway, policy=self._policy, config=self._cfg, log=self._log
            )
        return TokenTransfer(
            transfer,
            gateway=self._gateway,
            journal=self._journal,
            settler=self._settler,
            gas_wallet=self._gas_wallet,
            policy=self._policy,
            config=self._cfg,
            log=self._log,
        )

    def _asset(self) -> Asset:
        job = self.job
        asset = self._chain.asset(job.asset)
        if asset is None:
            raise ReleasePayment(
                f"asset {job.asset} is not configured on chain {job.chain_id} in the sweeper's chains.yaml",
                self._cfg.config_retry,
                ReleaseCategory.CONFIG,
            )
        if (asset.token_address or "").lower() != (job.token_address or "").lower():
            raise ReleasePayment(
                f"asset {job.asset}: the ledger says token {job.token_address or '(native)'} but the sweeper's "
                f"chains.yaml says {asset.token_address or '(native)'}; refusing to sweep until they agree",
                self._cfg.config_retry,
                ReleaseCategory.CONFIG,
            )
        return asset

    def _deposit_key(self) -> DerivedKey:
        job = self.job
        try:
            key = self._keys.derive(job.derivation_path)
        except KeyError_ as exc:
            raise ReleasePayment(
                f"cannot derive the deposit key: {exc}", self._cfg.config_retry, ReleaseCategory.CONFIG
            ) from None
        if key.address.lower() != job.deposit_address.lower():
            self._log.error(
                "derived key does not match the deposit address; refusing to sign",
                derivation_path=job.derivation_path,
                derived=key.address,
                deposit_address=job.deposit_address,
            )
            raise ReleasePayment(
                f"the key this sweeper derives at {job.derivation_path} is {key.address}, not the deposit address "
                f"{job.deposit_address}: the merchant's xpub does not come from the sweeper's seed (or another "
                "passphrase); refusing to sign",
                self._cfg.config_retry,
                ReleaseCategory.CONFIG,
            )
        return key

    async def _complete(self, settled: Mined) -> None:
        """The sweep is deep enough: tell the ledger what reached the treasury (the
        transaction's amount: a native sweep's value, the tokens its Transfer log showed)
        and the fee its receipt shows. The ledger accounts for the rest (dust)."""
        tx, receipt = settled.tx, settled.receipt
        for topup in self.job.transactions:
            if topup.kind is TxKind.GAS_TOPUP and topup.state is TxState.MINED:
                await self._journal.update(topup, TxState.CONFIRMED, topup.block_number)  # below the deep sweep
        fee = fee_paid(receipt, tx.max_fee_per_gas)
        status = await self._ledger.complete(self.job.key, tx.tx_hash, tx.amount, fee)
        tx.state = TxState.CONFIRMED
        tx.fee = fee
        self._log.info(
            "payment swept",
            tx_hash=tx.tx_hash,
            confirmed_unswept=str(self.job.amount),
            to_treasury=str(tx.amount),
            fee=str(fee),
            status=status,
        )
