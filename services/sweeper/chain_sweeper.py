"""Sweeping one chain: the signer lease, the claim loop, and each payment's sweep.

Per chain, only the replica holding the chain's signer lease (NATS KV) claims
payments and signs, so nonces never collide. For each claimed payment:

1. check the job: asset configured, treasury acceptable, and the key derived at
   the ledger's path really is the deposit address (else refuse and report);
2. recover first: any transaction the ledger recorded for the payment that may
   still be mined is rebroadcast / waited for / fee-bumped, never re-signed with
   different content (write-ahead makes a crash harmless);
3. otherwise sign a new sweep (native: balance minus the exact fee; ERC-20:
   gas top-up from the gas wallet first), record it in the ledger BEFORE it is
   broadcast, broadcast, wait for the receipt and the chain's confirmation
   depth, then CompleteSweep.

Anything that prevents a sweep gives the payment back to the ledger
(ReleaseSweep) with a reason a person can act on and a retry delay fitting the
cause (dust: hours; configuration: minutes; transient errors: seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from eth_utils import is_checksum_address

from services.common.chains import Asset, ChainConfig
from services.common.confirmations import is_confirmed
from services.common.errors import DomainError, FailedPrecondition, NotFound, Unavailable
from services.common.evm_rpc import MalformedResponse, RpcError, RpcUnavailable
from services.common.failpoints import failpoint
from services.common.lease import LeaseKeeper
from services.sweeper import metrics
from services.sweeper.adapters.chain_rpc import (
    ChainGateway,
    FeeCapExceeded,
    L1FeeUnavailable,
    encode_transfer,
    fee_paid,
    transferred,
)
from services.sweeper.adapters.key_store import DerivedKey, KeyError_, KeyStore
from services.sweeper.adapters.ledger_client import LedgerClient, tx_from_pb
from services.sweeper.domain.fees import (
    NATIVE_TRANSFER_GAS,
    FeeQuote,
    bump,
    spend_all_fee,
    topup_needed,
    with_buffer,
)
from services.sweeper.domain.model import Job, RecordedTx, SignedTx, TxKind, TxState
from services.sweeper.domain.policy import SweepPolicy, native_decision, token_decision, treasury_problem
from services.sweeper.domain.recovery import TxGroup, open_groups, should_replace
from services.sweeper.domain.send_errors import SendOutcome

log = structlog.get_logger("sweeper.worker")


class Release(Exception):
    """Give the payment back to the ledger: `reason` is stored with it, retried after `retry_after` s."""

    def __init__(self, reason: str, retry_after: int, category: str = "error") -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.category = category


@dataclass(frozen=True)
class WorkerConfig:
    worker_id: str
    batch_size: int
    concurrency: int
    interval: float
    claim_lease_seconds: int
    poll: float
    settle_timeout: float
    stuck_after: float
    fee_bump_bps: int
    max_replacements: int
    token_gas_buffer_percent: int
    dust_retry: int
    config_retry: int
    gas_wallet_retry: int
    error_retry: int
    drain_seconds: float = 10.0


@dataclass
class Settled:
    """How a group of same-nonce transactions ended: `mined` is the one in the chain
    (deep enough, succeeded), else `reason` says why none will be."""

    mined: RecordedTx | None
    receipt: dict | None = None
    reason: str = ""


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds} s"


class ChainSweeper:
    """The sweeper of one chain in this replica."""

    def __init__(
        self,
        *,
        chain: ChainConfig,
        gateway: ChainGateway,
        ledger: LedgerClient,
        keys: KeyStore,
        gas_key: DerivedKey,
        keeper: LeaseKeeper,
        policy: SweepPolicy,
        config: WorkerConfig,
        on_health: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self.chain = chain
        self._on_health = on_health
        self._healthy: bool | None = None
        self.gw = gateway
        self.ledger = ledger
        self.keys = keys
        self.gas_key = gas_key
        self.keeper = keeper
        self.policy = policy
        self.cfg = config
        self.label = str(chain.chain_id)
        self.in_flight: dict[str, asyncio.Task] = {}
        self.wake = asyncio.Event()
        self.gas_lock = asyncio.Lock()
        self.gas_next_nonce: int | None = None
        self.last_error = ""
        self.last_run_at: datetime | None = None
        self._chain_checked = False
        self._reconciled_at = -1e9
        self._not_before: dict[str, float] = {}  # payments that failed without a release: not before then
        self._log = log.bind(chain_id=chain.chain_id)

    # ------------------------------------------------------------------ status

    @property
    def leader(self) -> bool:
        return self.keeper.held

    def note_error(self, message: str) -> None:
        self.last_error = message[:1000]

    async def gas_wallet_balance(self) -> int | None:
        try:
            async with asyncio.timeout(3):
                balance = await self.gw.balance(self.gas_key.address)
        except Exception:  # noqa: BLE001 - status must answer even when the node does not
            return None
        metrics.GAS_WALLET_WEI.labels(self.label).set(balance)
        return balance

    # ------------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        keeper_stop = asyncio.Event()
        keeper_task = asyncio.create_task(self.keeper.run(keeper_stop), name=f"signer-lease-{self.label}")
        try:
            while not stop.is_set():
                # Cleared before the round: a wake during the round starts the next one at once.
                self.wake.clear()
                self.keeper.changed.clear()
                metrics.LEADER.labels(self.label).set(1 if self.keeper.held else 0)
                if self.keeper.held:
                    try:
                        await self.round()
                    except Exception:  # noqa: BLE001 - the loop must survive anything
                        self._log.exception("sweep round failed")
                        self.note_error("sweep round failed unexpectedly; see the logs")
                    timeout = self.cfg.interval
                else:
                    timeout = min(1.0, self.cfg.interval)
                waiters = [asyncio.ensure_future(e.wait()) for e in (stop, self.wake, self.keeper.changed)]
                try:
                    await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
        finally:
            await self._drain()
            keeper_stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(keeper_task, timeout=5)
            metrics.LEADER.labels(self.label).set(0)

    async def _drain(self) -> None:
        tasks = list(self.in_flight.values())
        if not tasks:
            return
        self._log.info("waiting for sweeps in flight", count=len(tasks))
        _done, pending = await asyncio.wait(tasks, timeout=self.cfg.drain_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    async def round(self) -> None:
        self.last_run_at = datetime.now(UTC)
        try:
            if not self._chain_checked:
                actual = await self.gw.rpc.get_chain_id()
                if actual != self.chain.chain_id:
                    self.note_error(
                        f"the RPC of chain {self.chain.chain_id} ({self.chain.name}) serves chain {actual}: "
                        "check rpc_url in chains.yaml; not sweeping"
                    )
                    self._log.error("rpc serves another chain; not sweeping", actual_chain_id=actual)
                    return
                self._chain_checked = True
            await self.gw.head(fresh=True)
        except (RpcUnavailable, RpcError, MalformedResponse) as exc:
            self.note_error(f"chain {self.chain.chain_id} RPC is unavailable, not sweeping: {exc}")
            self._log.warning("rpc unavailable; skipping round", error=str(exc)[:300])
            await self._health(False)
            return
        await self._health(True)
        if time.monotonic() - self._reconciled_at >= self.cfg.interval:
            self._reconciled_at = time.monotonic()
            await self._reconcile_gas_wallet()
        free = self.cfg.concurrency - len(self.in_flight)
        want = min(free, self.cfg.batch_size)
        if want <= 0 and not self.in_flight:
            return
        # Claiming again also renews the leases of the payments in flight (ours).
        limit = max(1, min(500, len(self.in_flight) + want))
        try:
            jobs = await self.ledger.claim(self.chain.chain_id, self.cfg.worker_id, limit, self.cfg.claim_lease_seconds)
        except DomainError as exc:
            self.note_error(str(exc))
            self._log.warning("claim failed", error=str(exc)[:300])
            return
        now = time.monotonic()
        for payment_id, until in list(self._not_before.items()):
            if until <= now:
                del self._not_before[payment_id]
        for job in jobs:
            if job.payment_id in self.in_flight or job.payment_id in self._not_before or want <= 0:
                continue
            want -= 1
            task = asyncio.create_task(self._run_job(job), name=f"sweep-{job.payment_id}")
            self.in_flight[job.payment_id] = task
        metrics.IN_FLIGHT.labels(self.label).set(len(self.in_flight))

    async def _health(self, ok: bool) -> None:
        if ok != self._healthy and self._on_health is not None:
            self._healthy = ok
            with contextlib.suppress(Exception):
                await self._on_health(ok)

    async def _reconcile_gas_wallet(self) -> None:
        """Rebroadcast recorded gas top-ups the node does not know (a crash between
        record and broadcast, a node that lost its mempool): a later nonce can only
        be mined once every earlier one is."""
        try:
            reply = await self.ledger.list_transactions(
                chain_id=self.chain.chain_id, states=[TxState.SIGNED, TxState.BROADCAST], page_size=500
            )
        except DomainError as exc:
            self._log.warning("cannot list pending transactions", error=str(exc)[:300])
            return
        pending = [
            tx
            for tx in (tx_from_pb(t) for t in reply.transactions)
            if tx.kind is TxKind.GAS_TOPUP and tx.from_address.lower() == self.gas_key.address.lower()
        ]
        if not pending:
            return
        try:
            mined_nonce = await self.gw.nonce(self.gas_key.address, "latest")
            for tx in sorted(pending, key=lambda t: t.nonce):
                if tx.nonce < mined_nonce or await self.gw.known(tx.tx_hash):
                    continue
                outcome, message = await self.gw.send(tx.raw_tx)
                metrics.REBROADCASTS.labels(self.label).inc()
                self._log.info(
                    "gas top-up rebroadcast",
                    tx_hash=tx.tx_hash,
                    nonce=tx.nonce,
                    outcome=outcome.value,
                    error=message[:200],
                )
        except (RpcUnavailable, RpcError, MalformedResponse) as exc:
            self._log.warning("gas wallet reconcile failed", error=str(exc)[:300])

    async def _run_job(self, job: Job) -> None:
        started = time.monotonic()
        log_ = self._log.bind(payment_id=job.payment_id, asset=job.asset)
        try:
            await JobRunner(self, job, log_).run()
            metrics.SWEPT.labels(self.label, job.asset).inc()
            metrics.SWEEP_SECONDS.labels(self.label).observe(time.monotonic() - started)
        except Release as r:
            await self._release(job, r.reason, r.retry_after, r.category, log_)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(
                    self._release(
                        job, "the sweeper stopped; another replica or a restart resumes it", 1, "stopping", log_
                    ),
                    timeout=3,
                )
            raise
        except FeeCapExceeded as exc:
            await self._release(job, str(exc), self.cfg.error_retry, "fees", log_)
        except L1FeeUnavailable as exc:
            await self._release(job, str(exc), self.cfg.config_retry, "config", log_)
        except (RpcUnavailable, MalformedResponse) as exc:
            await self._release(
                job, f"chain {job.chain_id} RPC failed, will retry: {exc}", self.cfg.error_retry, "error", log_
            )
        except RpcError as exc:
            await self._release(
                job, f"chain {job.chain_id} node error, will retry: {exc}", self.cfg.error_retry, "error", log_
            )
        except Unavailable as exc:  # only the ledger's calls raise it here
            # The ledger is gone: the lease lapses by itself and the next claim recovers.
            self._not_before[job.payment_id] = time.monotonic() + self.cfg.error_retry
            self.note_error(str(exc))
            log_.warning("ledger unavailable during sweep; the lease will lapse", error=str(exc)[:300])
        except DomainError as exc:
            await self._release(job, str(exc), self.cfg.error_retry, "error", log_)
        except Exception:  # noqa: BLE001
            log_.exception("sweep failed unexpectedly")
            await self._release(job, "internal error in the sweeper; see its logs", self.cfg.error_retry, "error", log_)
        finally:
            self.in_flight.pop(job.payment_id, None)
            metrics.IN_FLIGHT.labels(self.label).set(len(self.in_flight))
            self.wake.set()  # a free slot: claim more at once instead of at the next interval

    async def _release(self, job: Job, reason: str, retry_after: int, category: str, log_) -> None:
        metrics.RELEASED.labels(self.label, category).inc()
        if category != "stopping":
            self.note_error(f"{job.payment_id}: {reason}")
        level = log_.info if category in ("dust", "stopping") else log_.warning
        level("payment not swept; released", reason=reason, retry_after_seconds=retry_after, category=category)
        try:
            await self.ledger.release(job.payment_id, self.cfg.worker_id, reason, retry_after)
        except (FailedPrecondition, NotFound) as exc:
            log_.info("release not needed: lease already gone", error=str(exc)[:200])
        except DomainError as exc:
            log_.warning("release failed; the lease will lapse", error=str(exc)[:300])


class JobRunner:
    """One payment's sweep, from checks through recovery to CompleteSweep."""

    def __init__(self, sweeper: ChainSweeper, job: Job, log_) -> None:
        self.s = sweeper
        self.job = job
        self.gw = sweeper.gw
        self.cfg = sweeper.cfg
        self.log = log_
        self.chain = sweeper.chain

    # ------------------------------------------------------------------ entry

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
            raise Release(
                f"merchant {job.merchant_id} {problem} on chain {job.chain_id}: set one with "
                f"MerchantAdminService.SetTreasury, then SweeperService.SweepNow (retried in "
                f"{_hours(self.cfg.config_retry)})",
                self.cfg.config_retry,
                "config",
            )
        key = self._deposit_key()
        for group in open_groups(job.transactions, TxKind.SWEEP):
            self.log.info(
                "resuming a recorded sweep",
                nonce=group.nonce,
                tx_hash=group.latest.tx_hash,
                state=group.latest.state.value,
            )
            settled = await self.settle(group)
            if settled.mined is not None:
                await self._complete(settled)
                return
            self.log.warning("recorded sweep will not be mined; signing a new one", reason=settled.reason)
        if job.is_native:
            await self._sweep_native(key, treasury, asset)
        else:
            await self._sweep_token(key, treasury, asset)

    def _asset(self) -> Asset:
        job = self.job
        asset = self.chain.asset(job.asset)
        if asset is None:
            raise Release(
                f"asset {job.asset} is not configured on chain {job.chain_id} in the sweeper's chains.yaml",
                self.cfg.config_retry,
                "config",
            )
        if (asset.token_address or "").lower() != (job.token_address or "").lower():
            raise Release(
                f"asset {job.asset}: the ledger says token {job.token_address or '(native)'} but the sweeper's "
                f"chains.yaml says {asset.token_address or '(native)'}; refusing to sweep until they agree",
                self.cfg.config_retry,
                "config",
            )
        return asset

    def _deposit_key(self) -> DerivedKey:
        job = self.job
        try:
            key = self.s.keys.derive(job.derivation_path)
        except KeyError_ as exc:
            raise Release(f"cannot derive the deposit key: {exc}", self.cfg.config_retry, "config") from None
        if key.address.lower() != job.deposit_address.lower():
            self.log.error(
                "derived key does not match the deposit address; refusing to sign",
                derivation_path=job.derivation_path,
                derived=key.address,
                deposit_address=job.deposit_address,
            )
            raise Release(
                f"the key this sweeper derives at {job.derivation_path} is {key.address}, not the deposit address "
                f"{job.deposit_address}: the merchant's xpub does not come from the sweeper's seed (or another "
                "passphrase); refusing to sign",
                self.cfg.config_retry,
                "config",
            )
        return key

    # ------------------------------------------------------------------ native

    async def _sweep_native(self, key: DerivedKey, treasury: str, asset: Asset) -> None:
        job = self.job
        deposit = key.address
        nonce = await self._idle_nonce(deposit)
        balance = await self.gw.balance(deposit)
        if balance < job.amount:
            raise Release(
                f"insufficient funds: deposit address {deposit} holds {balance} base units of {asset.symbol} but "
                f"the ledger counts {job.amount} confirmed and unswept; nothing was sent (a reorg, or funds moved "
                "by a transaction the sweeper did not record?)",
                self.cfg.error_retry * 10,
                "error",
            )
        if await self.gw.is_contract(treasury):
            gas = with_buffer(await self._estimate(deposit, treasury, b"", 1), self.cfg.token_gas_buffer_percent)
        else:
            gas = NATIVE_TRANSFER_GAS
        fee = await self.gw.fee_quote()
        decision = native_decision(
            amount=job.amount, gas_limit=gas, fee=fee, policy=self.s.policy, chain_id=job.chain_id, symbol=asset.symbol
        )
        if not decision.sweep:
            raise Release(f"{decision.reason} (retried in {_hours(self.cfg.dust_retry)})", self.cfg.dust_retry, "dust")
        signed = self._sign(
            key,
            TxKind.SWEEP,
            nonce=nonce,
            to=treasury,
            value=decision.value,
            data=b"",
            gas=gas,
            fee=fee,
            recipient=treasury,
            amount=decision.value,
        )
        recorded = await self._record(signed)
        settled = await self.settle(TxGroup(recorded.from_address, recorded.nonce, [recorded]))
        if settled.mined is None:
            raise Release(f"sweep transaction failed: {settled.reason}", self.cfg.error_retry, "error")
        await self._complete(settled)

    # ------------------------------------------------------------------ ERC-20

    async def _sweep_token(self, key: DerivedKey, treasury: str, asset: Asset) -> None:
        job = self.job
        deposit = key.address
        token = job.token_address
        held = await self.gw.token_balance(token, deposit)
        if held < job.amount:
            raise Release(
                f"insufficient funds: deposit address {deposit} holds {held} base units of {asset.symbol} but the "
                f"ledger counts {job.amount} confirmed and unswept; nothing was sent",
                self.cfg.error_retry * 10,
                "error",
            )
        decision = token_decision(amount=job.amount, policy=self.s.policy, chain_id=job.chain_id, symbol=asset.symbol)
        if not decision.sweep:
            raise Release(f"{decision.reason} (retried in {_hours(self.cfg.dust_retry)})", self.cfg.dust_retry, "dust")
        data = encode_transfer(treasury, job.amount)
        gas = with_buffer(await self._estimate(deposit, token, data, 0), self.cfg.token_gas_buffer_percent)
        market = await self.gw.fee_quote()
        # A recorded top-up first: rebroadcast / wait for it instead of sending another.
        for group in open_groups(job.transactions, TxKind.GAS_TOPUP):
            self.log.info("resuming a recorded gas top-up", nonce=group.nonce, tx_hash=group.latest.tx_hash)
            await self.settle(group, depth=1)  # mined is enough to pay for the sweep
        native = await self._ensure_gas(deposit, gas, market)
        nonce = await self._idle_nonce(deposit)
        fee = spend_all_fee(native, gas, market)
        signed = self._sign(
            key,
            TxKind.SWEEP,
            nonce=nonce,
            to=token,
            value=0,
            data=data,
            gas=gas,
            fee=fee,
            recipient=treasury,
            amount=job.amount,
            token_address=token,
        )
        recorded = await self._record(signed)
        settled = await self.settle(TxGroup(recorded.from_address, recorded.nonce, [recorded]))
        if settled.mined is None:
            raise Release(f"token sweep failed: {settled.reason}", self.cfg.error_retry, "error")
        await self._complete(settled)

    async def _ensure_gas(self, deposit: str, gas: int, market: FeeQuote) -> int:
        """Top the deposit address up until it can pay `gas` at the market fee; its balance."""
        native = await self.gw.balance(deposit)
        for _ in range(3):
            need = topup_needed(native, gas, market)
            if need == 0:
                return native
            await self._topup(deposit, need)
            native = await self.gw.balance(deposit)
        raise Release(
            f"gas top-ups of {deposit} did not cover the token transfer's gas ({gas} gas at "
            f"{market.max_fee_per_gas} wei); will retry",
            self.cfg.error_retry,
            "error",
        )

    async def _topup(self, deposit: str, value: int) -> None:
        s = self.s
        gas_address = s.gas_key.address
        recorded: RecordedTx | None = None
        async with s.gas_lock:
            for _attempt in range(3):
                fee = await self.gw.fee_quote()
                cost = value + fee.cost(NATIVE_TRANSFER_GAS)
                balance = await self.gw.balance(gas_address, "pending")  # net of top-ups still in the pool
                metrics.GAS_WALLET_WEI.labels(s.label).set(balance)
                if balance < cost:
                    raise self._gas_wallet_poor(balance, cost)
                chain_nonce = await self.gw.nonce(gas_address, "pending")
                nonce = max(chain_nonce, s.gas_next_nonce or 0)
                signed = self._sign(
                    s.gas_key,
                    TxKind.GAS_TOPUP,
                    nonce=nonce,
                    to=deposit,
                    value=value,
                    data=b"",
                    gas=NATIVE_TRANSFER_GAS,
                    fee=fee,
                    recipient=deposit,
                    amount=value,
                )
                candidate = await self._record(signed)
                s.gas_next_nonce = nonce + 1  # recorded: the nonce is ours, rebroadcast fills any gap
                outcome, message = await self._broadcast(candidate)
                if outcome in (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN):
                    recorded = candidate
                    break
                if outcome is SendOutcome.NONCE_TOO_LOW:
                    # Someone else (an operator's wallet?) used the gas wallet's nonce.
                    await self._update(
                        candidate,
                        TxState.FAILED,
                        error=(
                            f"nonce too low: nonce {nonce} of the gas wallet {gas_address} was used by a transaction "
                            "the sweeper did not send; signed again with a fresh nonce"
                        ),
                    )
                    s.gas_next_nonce = None
                    continue
                s.gas_next_nonce = nonce  # definitively refused: the nonce is free again
                if outcome is SendOutcome.INSUFFICIENT_FUNDS:
                    await self._update(candidate, TxState.FAILED, error=f"insufficient funds: {message}")
                    raise self._gas_wallet_poor(balance, cost, message)
                if outcome is SendOutcome.UNDERPRICED:
                    await self._update(candidate, TxState.FAILED, error=f"underpriced: {message}")
                    continue
                await self._update(candidate, TxState.FAILED, error=f"rejected by the node: {message}")
                raise Release(f"the node refused a gas top-up: {message}", self.cfg.error_retry, "error")
            else:
                raise Release(
                    "could not send a gas top-up after 3 tries (nonce races); will retry", self.cfg.error_retry, "error"
                )
        # Mined is enough: the sweep can pay its gas. A reorg that drops the top-up drops
        # the sweep that spent it too (it comes later), so nothing is lost; the top-up is
        # marked CONFIRMED once the sweep is deep enough (see _complete).
        settled = await self.settle(TxGroup(recorded.from_address, recorded.nonce, [recorded]), depth=1)
        if settled.mined is None:
            raise Release(f"gas top-up failed: {settled.reason}", self.cfg.error_retry, "error")

    def _gas_wallet_poor(self, balance: int, cost: int, detail: str = "") -> Release:
        s = self.s
        reason = (
            f"gas wallet {s.gas_key.address} on chain {self.job.chain_id} has {balance} wei; a gas top-up "
            f"needs {cost} wei: fund it (PAYMESH_SWEEPER_GAS_WALLET_PATH {s.gas_key.path}); token sweeps wait and "
            f"retry in {_hours(self.cfg.gas_wallet_retry)}"
        )
        if detail:
            reason += f" (node: {detail})"
        return Release(reason, self.cfg.gas_wallet_retry, "gas_wallet")

    # ------------------------------------------------------------------ transactions

    async def _idle_nonce(self, address: str) -> int:
        latest = await self.gw.nonce(address, "latest")
        pending = await self.gw.nonce(address, "pending")
        if pending != latest:
            raise Release(
                f"{address} has a pending transaction the ledger has no open record of "
                f"(nonce {latest}..{pending - 1}); waiting for it before signing anything",
                self.cfg.error_retry,
                "error",
            )
        return latest

    async def _estimate(self, sender: str, to: str, data: bytes, value: int) -> int:
        try:
            return await self.gw.estimate_gas(sender, to, data, value)
        except RpcError as exc:
            raise Release(
                f"the transfer from {sender} to {to} would fail (eth_estimateGas: {exc.message}); nothing was sent",
                self.cfg.error_retry * 10,
                "error",
            ) from None

    def _sign(
        self,
        key: DerivedKey,
        kind: TxKind,
        *,
        nonce: int,
        to: str,
        value: int,
        data: bytes,
        gas: int,
        fee: FeeQuote,
        recipient: str,
        amount: int,
        token_address: str = "",
        replaces: str = "",
    ) -> SignedTx:
        return key.sign(
            kind=kind,
            chain_id=self.job.chain_id,
            nonce=nonce,
            to=to,
            value=value,
            data=data,
            gas_limit=gas,
            fee=fee,
            recipient=recipient,
            amount=amount,
            token_address=token_address,
            replaces_tx_hash=replaces,
        )

    async def _record(self, signed: SignedTx) -> RecordedTx:
        """Write-ahead: the signed bytes are in the ledger before any node sees them."""
        if not self.s.keeper.held:
            raise Release(
                "this replica lost the chain's signer lease; the new signer resumes the payment", 1, "stopping"
            )
        recorded = await self.s.ledger.record(self.cfg.worker_id, self.job.payment_id, self.job.chain_id, signed)
        metrics.TRANSACTIONS.labels(self.s.label, signed.kind.value).inc()
        self.job.transactions.append(recorded)
        self.log.info(
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

    async def _broadcast(self, tx: RecordedTx) -> tuple[SendOutcome, str]:
        outcome, message = await self.gw.send(tx.raw_tx)
        if outcome in (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN):
            failpoint("sweeper.after_broadcast")
            failpoint(f"sweeper.after_broadcast.{tx.kind.value}")
            if tx.state is TxState.SIGNED:
                await self._update(tx, TxState.BROADCAST)
        return outcome, message

    async def _update(
        self, tx: RecordedTx, state: TxState, block_number: int = 0, error: str = "", fee: int | None = None
    ) -> None:
        await self.s.ledger.update(tx.tx_hash, state, block_number, error, fee)
        tx.state = state
        if block_number:
            tx.block_number = block_number
        if error:
            tx.error = error
        if fee is not None:
            tx.fee = fee

    async def _complete(self, settled: Settled) -> None:
        """The sweep is deep enough: tell the ledger what reached the treasury (the
        transaction's amount: a native sweep's value, the tokens its Transfer log showed)
        and the fee its receipt shows. The ledger accounts for the rest (dust)."""
        tx, receipt = settled.mined, settled.receipt
        assert tx is not None and receipt is not None
        for topup in self.job.transactions:
            if topup.kind is TxKind.GAS_TOPUP and topup.state is TxState.MINED:
                await self._update(topup, TxState.CONFIRMED, topup.block_number)  # below the deep sweep
        fee = fee_paid(receipt, tx.max_fee_per_gas)
        status = await self.s.ledger.complete(self.job.payment_id, tx.tx_hash, tx.amount, fee)
        tx.state = TxState.CONFIRMED
        tx.fee = fee
        self.log.info(
            "payment swept",
            tx_hash=tx.tx_hash,
            confirmed_unswept=str(self.job.amount),
            to_treasury=str(tx.amount),
            fee=str(fee),
            status=status,
        )

    # ------------------------------------------------------------------ settling

    def _signer_of(self, tx: RecordedTx) -> DerivedKey:
        if tx.kind is TxKind.GAS_TOPUP:
            key = self.s.gas_key
        else:
            key = self.s.keys.derive(self.job.derivation_path)
        if key.address.lower() != tx.from_address.lower():
            raise Release(
                f"recorded transaction {tx.tx_hash} is from {tx.from_address}, which this sweeper has no key for "
                f"(it derives {key.address}); resolve it by hand",
                self.cfg.config_retry,
                "config",
            )
        return key

    async def _replacement(self, tx: RecordedTx, market: FeeQuote) -> SignedTx | None:
        """The same transaction with fees bumped (native sweeps keep the exact-zero math)."""
        fee = bump(tx.max_fee_per_gas, market, self.cfg.fee_bump_bps)
        if tx.max_priority_fee_per_gas is None and not market.legacy:
            fee = fee.with_price(fee.max_fee_per_gas, legacy=True)  # keep a legacy tx legacy
        key = self._signer_of(tx)
        job = self.job
        if tx.kind is TxKind.GAS_TOPUP:
            return self._sign(
                key,
                tx.kind,
                nonce=tx.nonce,
                to=tx.to_address,
                value=tx.amount,
                data=b"",
                gas=tx.gas_limit,
                fee=fee,
                recipient=tx.to_address,
                amount=tx.amount,
                replaces=tx.tx_hash,
            )
        if job.is_native:
            # What the original spends on value and gas: keep it, to the wei (an L1 data
            # fee reserve the original left aside stays aside, and is recorded as such).
            fee = dataclasses.replace(fee, l1_fee=tx.l1_fee_reserve)
            spend = tx.amount + tx.fee_cost
            value = spend - fee.gas_cost(tx.gas_limit)
            if value <= 0:
                self.log.warning(
                    "cannot bump the sweep's fee further: nothing would be left to send", tx_hash=tx.tx_hash
                )
                return None
            return self._sign(
                key,
                tx.kind,
                nonce=tx.nonce,
                to=tx.to_address,
                value=value,
                data=b"",
                gas=tx.gas_limit,
                fee=fee,
                recipient=tx.to_address,
                amount=value,
                replaces=tx.tx_hash,
            )
        # Token sweep: the deposit address must be able to pay the higher fee.
        await self._ensure_gas(tx.from_address, tx.gas_limit, fee)
        return self._sign(
            key,
            tx.kind,
            nonce=tx.nonce,
            to=job.token_address,
            value=0,
            data=encode_transfer(tx.to_address, tx.amount),
            gas=tx.gas_limit,
            fee=fee,
            recipient=tx.to_address,
            amount=tx.amount,
            token_address=job.token_address,
            replaces=tx.tx_hash,
        )

    @staticmethod
    def _age(tx: RecordedTx) -> float:
        stamp = tx.updated_at or tx.created_at
        if stamp is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - stamp).total_seconds())

    async def settle(self, group: TxGroup, depth: int | None = None) -> Settled:
        """Drive a group of same-nonce transactions until one is mined and deep enough
        (rebroadcasting, replacing when stuck), or until none can be (nonce used elsewhere,
        reverted, refused). Bounded by the settle timeout: then the payment is released
        and a later claim resumes exactly here. `depth` defaults to the chain's confirmations."""
        depth = depth or self.chain.confirmations
        deadline = time.monotonic() + self.cfg.settle_timeout
        sent_at = time.monotonic() - self._age(group.latest)
        checked_known_at = 0.0
        nonce_checked_at = -1e9
        first = True
        while True:
            if not first:
                if time.monotonic() > deadline:
                    raise Release(
                        f"transaction {group.latest.tx_hash} (nonce {group.nonce}) is still not confirmed after "
                        f"{self.cfg.settle_timeout:.0f} s; it stays recorded and the sweep resumes later",
                        self.cfg.error_retry,
                        "error",
                    )
                await asyncio.sleep(self.cfg.poll)
            first = False
            mined = await self._find_mined(group, deadline, depth)
            if isinstance(mined, Settled):
                return mined
            if mined == "reorged":
                continue
            now = time.monotonic()
            nonce_due = group.latest.state is TxState.SIGNED or now - nonce_checked_at >= max(2.0, 4 * self.cfg.poll)
            if nonce_due:
                nonce_checked_at = now
            if nonce_due and await self.gw.nonce(group.from_address, "latest") > group.nonce:
                # Mined between the receipt checks and now? Look once more before giving up on the group.
                mined = await self._find_mined(group, deadline, depth)
                if isinstance(mined, Settled):
                    return mined
                if mined == "reorged":
                    continue
                reason = (
                    f"nonce too low: nonce {group.nonce} of {group.from_address} was used by a transaction "
                    "the sweeper did not record"
                )
                for member in group.members:
                    if member.is_open or member.state is TxState.REPLACED:
                        await self._update(member, TxState.FAILED, error=reason)
                return Settled(None, reason=reason)
            latest = group.latest
            now = time.monotonic()
            if latest.state is TxState.SIGNED or now - checked_known_at > max(5.0, self.cfg.stuck_after / 4):
                checked_known_at = now
                was_signed = latest.state is TxState.SIGNED
                if was_signed or not await self.gw.known(latest.tx_hash):
                    if not was_signed:
                        metrics.REBROADCASTS.labels(self.s.label).inc()
                        self.log.info("rebroadcasting", tx_hash=latest.tx_hash, nonce=latest.nonce)
                    outcome, message = await self._broadcast(latest)
                    if outcome in (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN):
                        if was_signed:
                            sent_at = time.monotonic()
                    elif outcome is SendOutcome.NONCE_TOO_LOW:
                        continue  # mined meanwhile, or used elsewhere: the checks above sort it out
                    elif outcome is SendOutcome.UNDERPRICED:
                        sent_at = -1e9  # below the base fee now: replace at once
                    elif outcome is SendOutcome.INSUFFICIENT_FUNDS:
                        reason = f"insufficient funds: {message}"
                        previous = next((m for m in reversed(group.members[:-1]) if m.state is TxState.REPLACED), None)
                        await self._update(latest, TxState.FAILED, error=reason)
                        if previous is None:
                            return Settled(None, reason=reason)
                        await self._update(previous, TxState.BROADCAST)  # the original is still live
                        continue
                    else:
                        raise Release(
                            f"the node refused transaction {latest.tx_hash}: {message}; it stays recorded and is "
                            "sent again later",
                            self.cfg.error_retry,
                            "error",
                        )
            if await self._maybe_replace(group, latest, time.monotonic() - sent_at):
                sent_at = time.monotonic()

    async def _find_mined(self, group: TxGroup, deadline: float, depth: int) -> Settled | str | None:
        """A Settled when a member is mined (deep enough, or failed), "reorged" when one
        was mined but left the chain, None when no member has a receipt."""
        for tx in group.candidates():
            receipt = await self.gw.receipt(tx.tx_hash)
            if receipt is not None:
                result = await self._finish_mined(group, tx, receipt, deadline, depth)
                return "reorged" if result is None else result
        return None

    async def _maybe_replace(self, group: TxGroup, latest: RecordedTx, age: float) -> bool:
        base = await self.gw.next_base_fee()
        if not should_replace(
            current_fee=latest.max_fee_per_gas,
            next_base_fee=base,
            age_seconds=age,
            stuck_after_seconds=self.cfg.stuck_after,
            replacements=group.replacements,
            max_replacements=self.cfg.max_replacements,
        ):
            return False
        if not self.s.keeper.held:
            return False
        market = await self.gw.fee_quote()
        signed = await self._replacement(latest, market)
        if signed is None:
            return False
        self.log.warning(
            "replacing a stuck transaction",
            old=latest.tx_hash,
            new=signed.tx_hash,
            nonce=signed.nonce,
            old_fee=str(latest.max_fee_per_gas),
            new_fee=str(signed.max_fee_per_gas),
            waited_seconds=round(age, 1),
        )
        recorded = await self._record(signed)  # the ledger marks `latest` REPLACED
        latest.state = TxState.REPLACED
        group.members.append(recorded)
        metrics.REPLACEMENTS.labels(self.s.label).inc()
        outcome, message = await self._broadcast(recorded)
        if outcome not in (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN, SendOutcome.NONCE_TOO_LOW):
            self.log.warning("replacement refused; keeping the original", error=message[:300])
            await self._update(recorded, TxState.FAILED, error=f"replacement refused: {message}")
            await self._update(latest, TxState.BROADCAST)
        return True

    async def _finish_mined(
        self, group: TxGroup, tx: RecordedTx, receipt: dict, deadline: float, depth: int
    ) -> Settled | None:
        """tx is in a block: record it, wait for the chain's confirmations (its block is
        the first, services/common/confirmations.py). None when it left the chain
        meanwhile (reorg): the caller keeps settling the group."""
        block = int(receipt["blockNumber"], 16)
        block_hash = receipt.get("blockHash")
        fee = fee_paid(receipt, tx.max_fee_per_gas)
        if tx.state is not TxState.MINED or tx.block_number != block or tx.fee != fee:
            await self._update(tx, TxState.MINED, block, fee=fee)
        for other in group.members:
            if other is not tx and other.state in (TxState.SIGNED, TxState.BROADCAST):
                await self._update(
                    other, TxState.FAILED, error=f"another transaction with the same nonce ({tx.tx_hash}) was mined"
                )
        if int(receipt.get("status", "0x1"), 16) != 1:
            reason = f"transaction {tx.tx_hash} reverted in block {block}"
            await self._update(tx, TxState.FAILED, block, error=reason)
            return Settled(None, receipt, reason)
        if tx.kind is TxKind.SWEEP and not self.job.is_native:
            moved = transferred(receipt, self.job.token_address, tx.from_address, tx.to_address)
            if moved != tx.amount:
                reason = (
                    f"token transfer {tx.tx_hash} succeeded but moved {moved} instead of {tx.amount} "
                    "(non-standard token?)"
                )
                await self._update(tx, TxState.FAILED, block, error=reason)
                return Settled(None, receipt, reason)
        while True:
            head = await self.gw.head()
            if is_confirmed(head, block, depth):
                again = await self.gw.receipt(tx.tx_hash)
                if again is None or again.get("blockHash") != block_hash:
                    self.log.warning("transaction left its block (reorg); settling again", tx_hash=tx.tx_hash)
                    await self._update(tx, TxState.BROADCAST)
                    return None
                return Settled(tx, again)
            if time.monotonic() > deadline:
                raise Release(
                    f"transaction {tx.tx_hash} is mined in block {block} but has fewer than {depth} "
                    "confirmations yet (its block is the first); the sweep resumes later",
                    self.cfg.error_retry,
                    "error",
                )
            await asyncio.sleep(self.cfg.poll)
