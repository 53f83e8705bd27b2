"""How to move value from a derived key to a destination, one strategy per kind of asset.

A `Transfer` says what to move: `amount` of one asset on one chain from `key` to
`destination`. A `TransferStrategy` builds and signs the transaction that does it
(after any transaction it needs first, e.g. a gas top-up, which it records and
waits for), knows how to sign a stuck one again at higher fees, and what a mined
one must show. It never records or broadcasts the transfer itself: the caller
records it write-ahead (journal.py) and settles it (settler.py). Sweeps use it
today; refunds and payouts are meant to reuse it with their own journal.

- `NativeCoinTransfer`: the fee comes out of the amount and the key ends at
  exactly zero: a type-2 transaction with maxFee == tip (it costs exactly
  gas x maxFee) sending `amount - gas x maxFee - L1 reserve` (legacy gasPrice on
  `eip1559: false` chains; an estimated gas limit for a contract destination).
  A replacement spends the same total on value and gas, and leaves the same L1
  data fee reserve aside.
- `ExactNativeTransfer` (refunds and payouts): exactly `amount` to the destination,
  the fee on top, paid by the key; a replacement sends the same value at a higher fee.
- `TokenTransfer` (ERC-20): gas top-ups from the gas wallet until the key can pay
  the `transfer` gas (mined is enough), then `transfer(destination, amount)` at
  a fee that spends what the key holds in native coin (up to 3x the market; the
  L1 reserve stays); the receipt's Transfer log must show `amount` moved.

Both refuse with ReleasePayment, before signing anything, when the key holds less
than `amount`, when the amount is not worth sweeping (domain/policy.py), or when
the key has a pending transaction nobody recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.common.evm_rpc import RpcError
from services.sweeper.adapters.key_store import DerivedKey
from services.sweeper.domain.erc20 import encode_transfer
from services.sweeper.domain.fees import NATIVE_TRANSFER_GAS, FeeQuote, spend_all_fee, topup_needed, with_buffer
from services.sweeper.domain.model import RecordedTx, SignedTx, TxKind
from services.sweeper.domain.policy import SweepPolicy, native_decision, token_decision
from services.sweeper.domain.receipts import transferred
from services.sweeper.domain.recovery import TxGroup, foreign_sender, open_groups
from services.sweeper.domain.releases import ReleaseCategory, delay_text
from services.sweeper.domain.replacement import native_replacement
from services.sweeper.domain.settlement import Failed
from services.sweeper.gas_wallet import GasWallet
from services.sweeper.journal import PaymentJournal
from services.sweeper.ports import ChainGateway
from services.sweeper.releases import ReleasePayment
from services.sweeper.settings import SweepConfig
from services.sweeper.settler import Settler, TxAuthor


@dataclass(frozen=True)
class Transfer:
    """Move `amount` (base units) of `symbol` on `chain_id` from `key` to `destination`.
    `token_address` is "" for the native coin."""

    chain_id: int
    key: DerivedKey
    symbol: str
    token_address: str
    amount: int
    destination: str

    @property
    def source(self) -> str:
        return self.key.address


class TransferStrategy(TxAuthor, Protocol):
    """Signs a transfer's transaction and its replacements (settler.TxAuthor)."""

    transfer: Transfer
    label: str  # what its transaction is called in a reason ("sweep transaction", "token sweep")

    async def sign(self) -> SignedTx:
        """The transaction that moves the funds, signed, not yet recorded."""
        ...


class NativeCoinTransfer:
    """The native coin: everything at the key goes, the fee out of the amount."""

    label = "sweep transaction"

    def __init__(
        self, transfer: Transfer, *, gateway: ChainGateway, policy: SweepPolicy, config: SweepConfig, log
    ) -> None:
        self.transfer = transfer
        self._gateway = gateway
        self._policy = policy
        self._cfg = config
        self._log = log

    async def sign(self) -> SignedTx:
        t = self.transfer
        source = t.source
        nonce = await idle_nonce(self._gateway, source, self._cfg)
        balance = await self._gateway.balance(source)
        if balance < t.amount:
            raise ReleasePayment(
                f"insufficient funds: deposit address {source} holds {balance} base units of {t.symbol} but "
                f"the ledger counts {t.amount} confirmed and unswept; nothing was sent (a reorg, or funds moved "
                "by a transaction the sweeper did not record?)",
                self._cfg.error_retry * 10,
            )
        if await self._gateway.is_contract(t.destination):
            estimate = await estimate_gas(self._gateway, source, t.destination, b"", 1, self._cfg)
            gas = with_buffer(estimate, self._cfg.token_gas_buffer_percent)
        else:
            gas = NATIVE_TRANSFER_GAS
        fee = await self._gateway.fee_quote()
        decision = native_decision(
            amount=t.amount, gas_limit=gas, fee=fee, policy=self._policy, chain_id=t.chain_id, symbol=t.symbol
        )
        if not decision.sweep:
            raise _dust(decision.reason, self._cfg)
        return t.key.sign(
            kind=TxKind.SWEEP,
            chain_id=t.chain_id,
            nonce=nonce,
            to=t.destination,
            value=decision.value,
            data=b"",
            gas_limit=gas,
            fee=fee,
            recipient=t.destination,
            amount=decision.value,
        )

    async def replacement(self, stuck: RecordedTx, fee: FeeQuote) -> SignedTx | None:
        t = self.transfer
        _check_signer(t.key, stuck, self._cfg)
        # What the original spends on value and gas: keep it, to the wei (an L1 data
        # fee reserve the original left aside stays aside, and is recorded as such).
        fee, value = native_replacement(stuck, fee)
        if value <= 0:
            self._log.warning(
                "cannot bump the sweep's fee further: nothing would be left to send", tx_hash=stuck.tx_hash
            )
            return None
        return t.key.sign(
            kind=stuck.kind,
            chain_id=t.chain_id,
            nonce=stuck.nonce,
            to=stuck.to_address,
            value=value,
            data=b"",
            gas_limit=stuck.gas_limit,
            fee=fee,
            recipient=stuck.to_address,
            amount=value,
            replaces_tx_hash=stuck.tx_hash,
        )

    def mined_problem(self, tx: RecordedTx, receipt: dict) -> str:
        return ""  # a successful native transfer moved its value


class ExactNativeTransfer:
    """The native coin, an exact amount: the destination gets `amount`, the key pays the
    fee on top (a refund of part of a deposit, a payout from the payout wallet)."""

    label = "payout transaction"

    def __init__(self, transfer: Transfer, *, gateway: ChainGateway, config: SweepConfig, log) -> None:
        self.transfer = transfer
        self._gateway = gateway
        self._cfg = config
        self._log = log

    async def sign(self) -> SignedTx:
        t = self.transfer
        nonce = await idle_nonce(self._gateway, t.source, self._cfg)
        if await self._gateway.is_contract(t.destination):
            estimate = await estimate_gas(self._gateway, t.source, t.destination, b"", t.amount, self._cfg)
            gas = with_buffer(estimate, self._cfg.token_gas_buffer_percent)
        else:
            gas = NATIVE_TRANSFER_GAS
        fee = await self._gateway.fee_quote()
        balance = await self._gateway.balance(t.source)
        if balance < t.amount + fee.cost(gas):
            raise InsufficientFunds(
                f"{t.source} holds {balance} base units of {t.symbol}; sending {t.amount} needs "
                f"{t.amount + fee.cost(gas)} with the network fee ({gas} gas at {fee.max_fee_per_gas} wei)"
            )
        return t.key.sign(
            kind=TxKind.PAYOUT,
            chain_id=t.chain_id,
            nonce=nonce,
            to=t.destination,
            value=t.amount,
            data=b"",
            gas_limit=gas,
            fee=fee,
            recipient=t.destination,
            amount=t.amount,
        )

    async def replacement(self, stuck: RecordedTx, fee: FeeQuote) -> SignedTx | None:
        t = self.transfer
        _check_signer(t.key, stuck, self._cfg)
        if await self._gateway.balance(t.source) < stuck.amount + fee.cost(stuck.gas_limit):
            self._log.warning("cannot bump the payout's fee: the source cannot pay it", tx_hash=stuck.tx_hash)
            return None
        return t.key.sign(
            kind=stuck.kind,
            chain_id=t.chain_id,
            nonce=stuck.nonce,
            to=stuck.to_address,
            value=stuck.amount,
            data=b"",
            gas_limit=stuck.gas_limit,
            fee=fee,
            recipient=stuck.to_address,
            amount=stuck.amount,
            replaces_tx_hash=stuck.tx_hash,
        )

    def mined_problem(self, tx: RecordedTx, receipt: dict) -> str:
        return ""  # a successful native transfer moved its value


class InsufficientFunds(Exception):
    """The key cannot pay the transfer (a payout: it fails with this reason, nothing was signed)."""


class TokenTransfer:
    """An ERC-20 token: gas top-ups from the gas wallet first, then transfer()."""

    label = "token sweep"

    def __init__(
        self,
        transfer: Transfer,
        *,
        gateway: ChainGateway,
        journal: PaymentJournal,
        settler: Settler,
        gas_wallet: GasWallet,
        policy: SweepPolicy,
        config: SweepConfig,
        log,
        kind: TxKind = TxKind.SWEEP,
    ) -> None:
        """`kind` PAYOUT: a refund's or payout's exact amount (no minimum worth sweeping;
        too few tokens at the key is InsufficientFunds)."""
        self.kind = kind
        if kind is TxKind.PAYOUT:
            self.label = "token payout"
        self.transfer = transfer
        self._gateway = gateway
        self._journal = journal
        self._settler = settler
        self._gas_wallet = gas_wallet
        self._policy = policy
        self._cfg = config
        self._log = log

    async def sign(self) -> SignedTx:
        t = self.transfer
        source = t.source
        token = t.token_address
        held = await self._gateway.token_balance(token, source)
        if held < t.amount and self.kind is TxKind.PAYOUT:
            raise InsufficientFunds(f"{source} holds {held} base units of {t.symbol}; the payout sends {t.amount}")
        if held < t.amount:
            raise ReleasePayment(
                f"insufficient funds: deposit address {source} holds {held} base units of {t.symbol} but the "
                f"ledger counts {t.amount} confirmed and unswept; nothing was sent",
                self._cfg.error_retry * 10,
            )
        decision = token_decision(amount=t.amount, policy=self._policy, chain_id=t.chain_id, symbol=t.symbol)
        if not decision.sweep and self.kind is TxKind.SWEEP:
            raise _dust(decision.reason, self._cfg)
        data = encode_transfer(t.destination, t.amount)
        gas = with_buffer(
            await estimate_gas(self._gateway, source, token, data, 0, self._cfg), self._cfg.token_gas_buffer_percent
        )
        market = await self._gateway.fee_quote()
        # A recorded top-up first: rebroadcast / wait for it instead of sending another.
        for group in open_groups(self._journal.transactions, TxKind.GAS_TOPUP):
            self._log.info("resuming a recorded gas top-up", nonce=group.nonce, tx_hash=group.latest.tx_hash)
            await self._settler.settle(group, self._gas_wallet, depth=1)  # mined is enough to pay for the sweep
        native = await self._ensure_gas(source, gas, market)
        nonce = await idle_nonce(self._gateway, source, self._cfg)
        # A sweep spends the deposit's native dust on gas; a payout pays the market fee.
        fee = spend_all_fee(native, gas, market) if self.kind is TxKind.SWEEP else market
        return t.key.sign(
            kind=self.kind,
            chain_id=t.chain_id,
            nonce=nonce,
            to=token,
            value=0,
            data=data,
            gas_limit=gas,
            fee=fee,
            recipient=t.destination,
            amount=t.amount,
            token_address=token,
        )

    async def _ensure_gas(self, address: str, gas: int, market: FeeQuote) -> int:
        """Top `address` up until it can pay `gas` at the market fee; its balance."""
        native = await self._gateway.balance(address)
        for _ in range(3):
            need = topup_needed(native, gas, market)
            if need == 0:
                return native
            await self._top_up(address, need)
            native = await self._gateway.balance(address)
        raise ReleasePayment(
            f"gas top-ups of {address} did not cover the token transfer's gas ({gas} gas at "
            f"{market.max_fee_per_gas} wei); will retry",
            self._cfg.error_retry,
        )

    async def _top_up(self, address: str, value: int) -> None:
        recorded = await self._gas_wallet.send_top_up(address, value, self._journal)
        # Mined is enough: the sweep can pay its gas. A reorg that drops the top-up drops
        # the sweep that spent it too (it comes later), so nothing is lost; the top-up is
        # marked CONFIRMED once the sweep is deep enough (payment_sweep.PaymentSweep).
        settled = await self._settler.settle(TxGroup.of(recorded), self._gas_wallet, depth=1)
        if isinstance(settled, Failed):
            raise ReleasePayment(f"gas top-up failed: {settled.reason}", self._cfg.error_retry)

    async def replacement(self, stuck: RecordedTx, fee: FeeQuote) -> SignedTx | None:
        t = self.transfer
        _check_signer(t.key, stuck, self._cfg)
        # The key must be able to pay the higher fee.
        await self._ensure_gas(stuck.from_address, stuck.gas_limit, fee)
        return t.key.sign(
            kind=stuck.kind,
            chain_id=t.chain_id,
            nonce=stuck.nonce,
            to=t.token_address,
            value=0,
            data=encode_transfer(stuck.to_address, stuck.amount),
            gas_limit=stuck.gas_limit,
            fee=fee,
            recipient=stuck.to_address,
            amount=stuck.amount,
            token_address=t.token_address,
            replaces_tx_hash=stuck.tx_hash,
        )

    def mined_problem(self, tx: RecordedTx, receipt: dict) -> str:
        moved = transferred(receipt, self.transfer.token_address, tx.from_address, tx.to_address)
        if moved != tx.amount:
            return (
                f"token transfer {tx.tx_hash} succeeded but moved {moved} instead of {tx.amount} (non-standard token?)"
            )
        return ""


async def idle_nonce(gateway: ChainGateway, address: str, config: SweepConfig) -> int:
    """The next nonce of `address`, which must have nothing pending that this sweep job
    has no open record of (else ReleasePayment: wait for it before signing anything)."""
    latest = await gateway.nonce(address, "latest")
    pending = await gateway.nonce(address, "pending")
    if pending != latest:
        raise ReleasePayment(
            f"{address} has a pending transaction the ledger has no open record of "
            f"(nonce {latest}..{pending - 1}); waiting for it before signing anything",
            config.error_retry,
        )
    return latest


async def estimate_gas(
    gateway: ChainGateway, sender: str, to: str, data: bytes, value: int, config: SweepConfig
) -> int:
    """eth_estimateGas; a node that says the call would fail ends the sweep before anything is signed."""
    try:
        return await gateway.estimate_gas(sender, to, data, value)
    except RpcError as exc:
        raise ReleasePayment(
            f"the transfer from {sender} to {to} would fail (eth_estimateGas: {exc.message}); nothing was sent",
            config.error_retry * 10,
        ) from None


def _dust(reason: str, config: SweepConfig) -> ReleasePayment:
    return ReleasePayment(
        f"{reason} (retried in {delay_text(config.dust_retry)})", config.dust_retry, ReleaseCategory.DUST
    )


def _check_signer(key: DerivedKey, stuck: RecordedTx, config: SweepConfig) -> None:
    problem = foreign_sender(stuck, key.address)
    if problem:
        raise ReleasePayment(problem, config.config_retry, ReleaseCategory.CONFIG)
