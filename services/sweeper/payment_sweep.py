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
        asset = configured_asset(self._chain, job.asset, job.token_address, self._cfg)
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
        key = checked_key(
            self._keys, job.derivation_path, job.deposit_address, "the deposit address", self._cfg, self._log
        )
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


def configured_asset(chain: ChainConfig, symbol: str, token_address: str, config: SweepConfig) -> Asset:
    """The asset the ledger names, as this sweeper's chains.yaml configures it, with the
    same token contract; ReleasePayment (config) when it is missing or differs: nothing
    is signed for an asset the two disagree on."""
    asset = chain.asset(symbol)
    if asset is None:
        raise ReleasePayment(
            f"asset {symbol} is not configured on chain {chain.chain_id} in the sweeper's chains.yaml",
            config.config_retry,
            ReleaseCategory.CONFIG,
        )
    if (asset.token_address or "").lower() != (token_address or "").lower():
        raise ReleasePayment(
            f"asset {symbol}: the ledger says token {token_address or '(native)'} but the sweeper's "
            f"chains.yaml says {asset.token_address or '(native)'}; refusing to sign until they agree",
            config.config_retry,
            ReleaseCategory.CONFIG,
        )
    return asset


def checked_key(keys: KeyStore, path: str, address: str, what: str, config: SweepConfig, log) -> DerivedKey:
    """The key at `path` of the seed, which must be `address` (`what` names it: the
    deposit address, the payout wallet); ReleasePayment (config) otherwise: a key that
    is not the address the ledger expects never signs."""
    try:
        key = keys.derive(path)
    except KeyError_ as exc:
        raise ReleasePayment(
            f"cannot derive the key of {what}: {exc}", config.config_retry, ReleaseCategory.CONFIG
        ) from None
    if key.address.lower() != address.lower():
        log.error(
            "derived key does not match; refusing to sign", derivation_path=path, derived=key.address, expected=address
        )
        raise ReleasePayment(
            f"the key this sweeper derives at {path} is {key.address}, not {what} {address}: the merchant's xpub "
            "does not come from the sweeper's seed (or another passphrase); refusing to sign",
            config.config_retry,
            ReleaseCategory.CONFIG,
        )
    return key
