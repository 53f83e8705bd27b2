"""The chain's gas wallet: the key (PAYMESH_SWEEPER_GAS_WALLET_PATH) that pays the
native coin token sweeps need for gas, as top-ups into the deposit address.

Guarantees: one top-up is signed at a time per chain (one lock), and nonces come
from one cursor: the next nonce is the higher of the node's pending nonce and
the one after the last top-up this replica recorded, so concurrent sweeps never
sign two top-ups with the same nonce, and a recorded top-up's nonce is never
reused unless a node definitively refused it. A nonce taken by a transaction the
sweeper did not send (an operator's wallet) fails that top-up in the ledger and
signs again with a fresh nonce. Recorded top-ups the node lost are broadcast
again (`reconcile`), since a later nonce is only mined once every earlier one is.
"""

from __future__ import annotations

import asyncio

import structlog

from services.common.errors import DomainError
from services.common.evm_rpc import MalformedResponse, RpcError, RpcUnavailable
from services.sweeper import metrics
from services.sweeper.adapters.key_store import DerivedKey
from services.sweeper.domain.fees import NATIVE_TRANSFER_GAS, FeeQuote
from services.sweeper.domain.model import RecordedTx, SignedTx, TxKind, TxState
from services.sweeper.domain.recovery import foreign_sender
from services.sweeper.domain.releases import ReleaseCategory, delay_text
from services.sweeper.domain.send_errors import SendOutcome
from services.sweeper.journal import PaymentJournal
from services.sweeper.ports import ChainGateway, SweepLedger
from services.sweeper.releases import ReleasePayment
from services.sweeper.settings import SweepConfig

_RPC_TROUBLE = (RpcUnavailable, RpcError, MalformedResponse)

log = structlog.get_logger("sweeper.worker")  # the chain sweeper's logger (chain_sweeper.py)


class GasWallet:
    """One chain's gas wallet in this replica. Also the author of its top-ups for
    the settler (settler.TxAuthor): it signs their replacements."""

    def __init__(
        self, *, key: DerivedKey, chain_id: int, gateway: ChainGateway, ledger: SweepLedger, config: SweepConfig
    ) -> None:
        self.key = key
        self.chain_id = chain_id
        self._gateway = gateway
        self._ledger = ledger
        self._cfg = config
        self._label = str(chain_id)
        self._log = log.bind(chain_id=chain_id)
        self._lock = asyncio.Lock()
        self._next_nonce: int | None = None  # after the last top-up recorded here; None: ask the node

    @property
    def address(self) -> str:
        return self.key.address

    async def balance(self) -> int | None:
        """The balance for the operator's status (None when the node does not answer within 3 s)."""
        try:
            async with asyncio.timeout(3):
                balance = await self._gateway.balance(self.key.address)
        except Exception:  # noqa: BLE001 - status must answer even when the node does not
            return None
        metrics.GAS_WALLET_WEI.labels(self._label).set(balance)
        return balance

    async def reconcile(self) -> None:
        """Rebroadcast recorded gas top-ups the node does not know (a crash between
        record and broadcast, a node that lost its mempool): a later nonce can only
        be mined once every earlier one is."""
        try:
            unsettled = await self._ledger.unsettled_transactions(self.chain_id, 500)
        except DomainError as exc:
            self._log.warning("cannot list pending transactions", error=str(exc)[:300])
            return
        pending = [
            tx for tx in unsettled if tx.kind is TxKind.GAS_TOPUP and tx.from_address.lower() == self.address.lower()
        ]
        if not pending:
            return
        try:
            mined_nonce = await self._gateway.nonce(self.address, "latest")
            for tx in sorted(pending, key=lambda t: t.nonce):
                if tx.nonce < mined_nonce or await self._gateway.known(tx.tx_hash):
                    continue
                outcome, message = await self._gateway.send(tx.raw_tx)
                metrics.REBROADCASTS.labels(self._label).inc()
                self._log.info(
                    "gas top-up rebroadcast",
                    tx_hash=tx.tx_hash,
                    nonce=tx.nonce,
                    outcome=outcome.value,
                    error=message[:200],
                )
        except _RPC_TROUBLE as exc:
            self._log.warning("gas wallet reconcile failed", error=str(exc)[:300])

    async def send_top_up(self, deposit: str, value: int, journal: PaymentJournal) -> RecordedTx:
        """Sign, record (in the payment's journal) and broadcast a top-up of `value` wei
        to `deposit`; the recorded top-up a node accepted. ReleasePayment when the
        wallet is too poor or the node refuses it."""
        async with self._lock:
            for _attempt in range(3):
                fee = await self._gateway.fee_quote()
                cost = value + fee.cost(NATIVE_TRANSFER_GAS)
                balance = await self._gateway.balance(self.address, "pending")  # net of top-ups still in the pool
                metrics.GAS_WALLET_WEI.labels(self._label).set(balance)
                if balance < cost:
                    raise self._poor(balance, cost)
                chain_nonce = await self._gateway.nonce(self.address, "pending")
                nonce = max(chain_nonce, self._next_nonce or 0)
                signed = self.key.sign(
                    kind=TxKind.GAS_TOPUP,
                    chain_id=self.chain_id,
                    nonce=nonce,
                    to=deposit,
                    value=value,
                    data=b"",
                    gas_limit=NATIVE_TRANSFER_GAS,
                    fee=fee,
                    recipient=deposit,
                    amount=value,
                )
                candidate = await journal.record(signed)
                self._next_nonce = nonce + 1  # recorded: the nonce is ours, rebroadcast fills any gap
                outcome, message = await journal.broadcast(candidate)
                if outcome in (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN):
                    return candidate
                if outcome is SendOutcome.NONCE_TOO_LOW:
                    # Someone else (an operator's wallet?) used the gas wallet's nonce.
                    await journal.update(
                        candidate,
                        TxState.FAILED,
                        error=(
                            f"nonce too low: nonce {nonce} of the gas wallet {self.address} was used by a transaction "
                            "the sweeper did not send; signed again with a fresh nonce"
                        ),
                    )
                    self._next_nonce = None
                    continue
                self._next_nonce = nonce  # definitively refused: the nonce is free again
                if outcome is SendOutcome.INSUFFICIENT_FUNDS:
                    await journal.update(candidate, TxState.FAILED, error=f"insufficient funds: {message}")
                    raise self._poor(balance, cost, message)
                if outcome is SendOutcome.UNDERPRICED:
                    await journal.update(candidate, TxState.FAILED, error=f"underpriced: {message}")
                    continue
                await journal.update(candidate, TxState.FAILED, error=f"rejected by the node: {message}")
                raise ReleasePayment(f"the node refused a gas top-up: {message}", self._cfg.error_retry)
            raise ReleasePayment(
                "could not send a gas top-up after 3 tries (nonce races); will retry", self._cfg.error_retry
            )

    def _poor(self, balance: int, cost: int, detail: str = "") -> ReleasePayment:
        reason = (
            f"gas wallet {self.address} on chain {self.chain_id} has {balance} wei; a gas top-up "
            f"needs {cost} wei: fund it (PAYMESH_SWEEPER_GAS_WALLET_PATH {self.key.path}); token sweeps wait and "
            f"retry in {delay_text(self._cfg.gas_wallet_retry)}"
        )
        if detail:
            reason += f" (node: {detail})"
        return ReleasePayment(reason, self._cfg.gas_wallet_retry, ReleaseCategory.GAS_WALLET)

    # ------------------------------------------------------------------ settler.TxAuthor

    async def replacement(self, stuck: RecordedTx, fee: FeeQuote) -> SignedTx | None:
        """A stuck top-up again at `fee`: the same value to the same deposit address."""
        problem = foreign_sender(stuck, self.address)
        if problem:
            raise ReleasePayment(problem, self._cfg.config_retry, ReleaseCategory.CONFIG)
        return self.key.sign(
            kind=stuck.kind,
            chain_id=self.chain_id,
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
        return ""  # a successful native transfer did its job
