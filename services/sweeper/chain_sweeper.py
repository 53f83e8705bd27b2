"""The sweeper of one chain in this replica: the signer lease, the claim loop, the
sweeps in flight, and what happens to a payment whose sweep cannot finish.

Per chain, only the replica holding the chain's signer lease claims payments
and signs, so nonces never collide. The lease is services/common/lease.py, the
one leadership implementation (issue 13 §3 puts the listener on it too): the key
`chain-<id>` in the NATS KV bucket PAYMESH_SWEEPER_SIGNER_LEASE_BUCKET, whose TTL
(PAYMESH_SWEEPER_SIGNER_LEASE_TTL_SECONDS, 10 s; the bucket's own TTL wins when it
was created with another) is how long a dead holder keeps it.

The stop-acting rule: a replica signs only while `LeaseKeeper.held` is true, and
`held` is true only while the last successful create or renewal of the key is
younger than TTL - TTL/4 (7.5 s at the default TTL). The keeper renews every
TTL/3, so a healthy holder never gets near it; a renewal refused because someone
else holds the key ends `held` at once; a holder cut off from NATS keeps its old
validity and stops signing at most 3/4 TTL after its last successful renewal,
while the key itself lives a full TTL after that write, so another replica can
only take over after this one has stopped. `held` is checked at the start of
every round (no claims without it), before any signed transaction is recorded
(the journal releases the payment, "stopping", instead) and before a stuck
transaction is replaced. Sweeps in flight keep settling what is already
recorded (rebroadcasting the same signed bytes is safe from any replica) until
they need to sign. A clean stop releases the key, so the next replica takes over
at once.

A round runs every PAYMESH_SWEEPER_INTERVAL_SECONDS, at once when `wake` is set (a
payment event, SweepNow/RetrySweep, a sweep slot freed) or the lease changes
hands. It checks the RPC serves the configured chain and answers (the chain's
health), rebroadcasts gas top-ups the node lost (gas_wallet.py), and claims up
to the free slots (PAYMESH_SWEEPER_CONCURRENCY in flight, PAYMESH_SWEEPER_BATCH_SIZE
a round); claiming again renews the ledger leases of the payments in flight.
Each claimed sweep job is swept by payment_sweep.PaymentSweep in its own task;
whatever ends it early becomes a release through the one table in releases.py.

Refunds and payouts (payout_send.PayoutSend) run in the same rounds, slots and
signer bookkeeping: after the sweeps, the round claims the chain's due refunds and
payouts (PayoutLedgerService) and starts those whose source key signs nothing else
now. So a deposit address never signs a sweep and a refund at once, and a payout
wallet sends one payout at a time: their nonces never collide.

A sweep job is one (payment, chain, asset), its SweepJobKey (domain/model.py):
a payment that accepts several assets on one deposit address has one job per
asset, so everything here that is per job (the sweeps in flight, the hold-backs,
the releases) is keyed by it, and jobs of one payment complete and release on
their own. Jobs that sign with the same deposit key (two assets of one payment on
this chain) are swept one after the other, never at once: their nonces come from
that one key. Which goes first (`signing_order`): a job with recorded transactions
still open (resume before anything new is signed with that key), then a
native-coin job (its sweep leaves the address at exactly zero, so a token job
after it pays its gas from a top-up, never from the native job's funds). The ones
waiting stay leased and start in a later round.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from services.common.chains import ChainConfig
from services.common.errors import DomainError, FailedPrecondition, NotFound
from services.common.evm_rpc import MalformedResponse, RpcError, RpcUnavailable
from services.common.lease import LeaseKeeper
from services.sweeper import metrics
from services.sweeper.adapters.key_store import DerivedKey, KeyStore
from services.sweeper.domain.model import ChainStatus, Job, PayoutJob, SweepJobKey
from services.sweeper.domain.policy import SweepPolicy
from services.sweeper.domain.releases import Release, ReleaseCategory
from services.sweeper.gas_wallet import GasWallet
from services.sweeper.journal import PaymentJournal, PayoutJournal
from services.sweeper.payment_sweep import PaymentSweep
from services.sweeper.payout_send import PayoutSend
from services.sweeper.ports import ChainGateway, PayoutLedger, SweepLedger
from services.sweeper.releases import release_for
from services.sweeper.settings import SweepConfig
from services.sweeper.settler import Settler

# The name predates this module; kept, since it is in every log line and log queries filter on it.
log = structlog.get_logger("sweeper.worker")


def signing_order(job: Job) -> tuple[int, int]:
    """Among jobs that sign with one deposit key, which starts first (lowest): one with
    open recorded transactions, then the native coin, then tokens (module docstring)."""
    return (0 if any(t.is_open for t in job.transactions) else 1, 0 if job.is_native else 1)


class ChainSweeper:
    """The sweeper of one chain in this replica."""

    def __init__(
        self,
        *,
        chain: ChainConfig,
        gateway: ChainGateway,
        ledger: SweepLedger,
        keys: KeyStore,
        gas_wallet: GasWallet,
        keeper: LeaseKeeper,
        policy: SweepPolicy,
        config: SweepConfig,
        on_health: Callable[[bool], Awaitable[None]] | None = None,
        payouts: PayoutLedger | None = None,
    ) -> None:
        """`payouts`: the ledger's PayoutLedgerService (None: this sweeper sends no refunds or payouts)."""
        self.chain = chain
        self.payout_ledger = payouts
        self._on_health = on_health
        self._healthy: bool | None = None
        self.gateway = gateway
        self.ledger = ledger
        self.keys = keys
        self.gas_wallet = gas_wallet
        self.keeper = keeper
        self.policy = policy
        self.cfg = config
        self.label = str(chain.chain_id)
        # Sweep jobs by their key, refunds and payouts by their id.
        self.in_flight: dict[SweepJobKey | str, asyncio.Task] = {}
        self._signers: dict[SweepJobKey | str, str] = {}  # the address each job in flight signs with
        self.wake = asyncio.Event()
        self.last_error = ""
        self.last_run_at: datetime | None = None
        self._chain_checked = False
        self._reconciled_at = -1e9
        self._claims_term = 0  # the signer term whose first claim took over (LeaseKeeper.term)
        self._not_before: dict[SweepJobKey | str, float] = {}  # jobs that failed without a release: not before then
        self._log = log.bind(chain_id=chain.chain_id)

    # ------------------------------------------------------------------ status

    @property
    def leader(self) -> bool:
        return self.keeper.held

    @property
    def gas_key(self) -> DerivedKey:
        return self.gas_wallet.key

    def note_error(self, message: str) -> None:
        self.last_error = message[:1000]

    async def gas_wallet_balance(self) -> int | None:
        return await self.gas_wallet.balance()

    async def status(self) -> ChainStatus:
        balance = await self.gas_wallet.balance()  # first: it may take up to 3 s, the rest is as of now
        return ChainStatus(
            chain_id=self.chain.chain_id,
            leader=self.leader,
            gas_wallet_address=self.gas_wallet.address,
            gas_wallet_balance=balance,
            in_flight=len(self.in_flight),
            last_error=self.last_error,
            last_run_at=self.last_run_at,
        )

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
                actual = await self.gateway.served_chain_id()
                if actual != self.chain.chain_id:
                    self.note_error(
                        f"the RPC of chain {self.chain.chain_id} ({self.chain.name}) serves chain {actual}: "
                        "check rpc_url in chains.yaml; not sweeping"
                    )
                    self._log.error("rpc serves another chain; not sweeping", actual_chain_id=actual)
                    return
                self._chain_checked = True
            await self.gateway.head(fresh=True)
        except (RpcUnavailable, RpcError, MalformedResponse) as exc:
            self.note_error(f"chain {self.chain.chain_id} RPC is unavailable, not sweeping: {exc}")
            self._log.warning("rpc unavailable; skipping round", error=str(exc)[:300])
            await self._health(False)
            return
        await self._health(True)
        if time.monotonic() - self._reconciled_at >= self.cfg.interval:
            self._reconciled_at = time.monotonic()
            await self.gas_wallet.reconcile()
        free = self.cfg.concurrency - len(self.in_flight)
        want = min(free, self.cfg.batch_size)
        if want <= 0 and not self.in_flight:
            return
        # Claiming again also renews the leases of the payments in flight (ours). The
        # first claim of a new signer term takes over what a previous signer still holds.
        limit = max(1, min(500, len(self.in_flight) + want))
        term = self.keeper.term
        take_over = term != self._claims_term
        try:
            jobs = await self.ledger.claim(
                self.chain.chain_id, self.cfg.worker_id, limit, self.cfg.claim_lease_seconds, take_over
            )
        except DomainError as exc:
            self.note_error(str(exc))
            self._log.warning("claim failed", error=str(exc)[:300])
            return
        now = time.monotonic()
        for key, until in list(self._not_before.items()):
            if until <= now:
                del self._not_before[key]
        signing = set(self._signers.values())
        first: dict[str, SweepJobKey] = {}  # per deposit key, the job that may start
        for job in sorted(jobs, key=signing_order):
            if job.key not in self.in_flight and job.key not in self._not_before:
                first.setdefault(job.deposit_address.lower(), job.key)
        for job in jobs:
            key = job.key
            if key in self.in_flight or key in self._not_before or want <= 0:
                continue
            signer = job.deposit_address.lower()
            if signer in signing or first.get(signer) != key:
                continue  # another job signs with this deposit key now, or goes first: this one after it
            signing.add(signer)
            want -= 1
            task = asyncio.create_task(self._sweep(job), name=f"sweep-{key}")
            self.in_flight[key] = task
            self._signers[key] = signer
        if self.payout_ledger is None or await self._start_payouts(signing, want, take_over):
            self._claims_term = term  # else the next round takes the payouts over
        metrics.IN_FLIGHT.labels(self.label).set(len(self.in_flight))

    async def _start_payouts(self, signing: set[str], want: int, take_over: bool) -> bool:
        """Claim the chain's due refunds and payouts (renewing the leases of those in
        flight) and start those whose source key signs nothing else now, oldest first;
        False when the claim failed."""
        assert self.payout_ledger is not None
        in_flight = sum(1 for k in self.in_flight if isinstance(k, str))
        if want <= 0 and not in_flight and not take_over:
            return True
        try:
            jobs = await self.payout_ledger.claim_payouts(
                self.chain.chain_id,
                self.cfg.worker_id,
                max(1, min(500, in_flight + max(want, 0))),
                self.cfg.claim_lease_seconds,
                take_over,
            )
        except DomainError as exc:
            self.note_error(str(exc))
            self._log.warning("payout claim failed", error=str(exc)[:300])
            return False
        for job in jobs:
            key = job.payout_id
            signer = job.source_address.lower()
            if key in self.in_flight or key in self._not_before or want <= 0 or signer in signing:
                continue
            signing.add(signer)
            want -= 1
            self.in_flight[key] = asyncio.create_task(self._send_payout(job), name=f"payout-{key}")
            self._signers[key] = signer

    async def _send_payout(self, job: PayoutJob) -> None:
        assert self.payout_ledger is not None
        log_ = self._log.bind(payout_id=job.payout_id, kind=job.kind, asset=job.asset)
        journal = PayoutJournal(
            job=job,
            ledger=self.payout_ledger,
            gateway=self.gateway,
            worker_id=self.cfg.worker_id,
            may_sign=lambda: self.keeper.held,
            label=self.label,
            log=log_,
            on_mined=lambda: self._free_signer(job.payout_id),
        )
        settler = Settler(
            gateway=self.gateway,
            journal=journal,
            config=self.cfg,
            confirmations=self.chain.confirmations,
            label=self.label,
            log=log_,
        )
        send = PayoutSend(
            job,
            chain=self.chain,
            gateway=self.gateway,
            ledger=self.payout_ledger,
            keys=self.keys,
            gas_wallet=self.gas_wallet,
            policy=self.policy,
            config=self.cfg,
            journal=journal,
            settler=settler,
            worker_id=self.cfg.worker_id,
            log=log_,
        )
        if await self._in_slot(job.payout_id, send.run, lambda r: self._release_payout(job, r, log_), log_, "payout"):
            metrics.PAYOUTS.labels(self.label, job.kind).inc()

    async def _in_slot(
        self,
        key: SweepJobKey | str,
        run: Callable[[], Awaitable[None]],
        release: Callable[[Release], Awaitable[None]],
        log_,
        what: str,
    ) -> bool:
        """Run one job in its slot (a sweep or a payout); whatever ends it early becomes a
        release through the one table in releases.py; the slot and its signer are freed,
        and the next round starts at once. True when the job ran to its end."""
        try:
            await run()
            return True
        except asyncio.CancelledError as exc:
            stopped = release_for(exc, chain_id=self.chain.chain_id, delays=self.cfg.retry_delays)
            assert stopped is not None  # the table has a row for CancelledError
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(release(stopped), timeout=3)
            raise
        except Exception as exc:  # noqa: BLE001 - every failure ends in a release (releases.py)
            failed = release_for(exc, chain_id=self.chain.chain_id, delays=self.cfg.retry_delays)
            assert failed is not None  # the table has a row for Exception
            if failed.unexpected:
                log_.exception(f"{what} failed unexpectedly")
            await release(failed)
            return False
        finally:
            self.in_flight.pop(key, None)
            self._signers.pop(key, None)
            metrics.IN_FLIGHT.labels(self.label).set(len(self.in_flight))
            self.wake.set()  # a free slot: claim more at once instead of at the next interval

    def _free_signer(self, key: str) -> None:
        """The payout's transaction is mined: its source may sign the next one (the payout
        itself stays in flight until it has its confirmations)."""
        if self._signers.pop(key, None) is not None:
            self.wake.set()

    async def _release_payout(self, job: PayoutJob, release: Release, log_) -> None:
        assert self.payout_ledger is not None
        if not release.hand_back:
            self._not_before[job.payout_id] = time.monotonic() + release.retry_after
            self.note_error(release.reason)
            return
        if release.category is not ReleaseCategory.STOPPING:
            self.note_error(f"{job.payout_id}: {release.reason}")
        log_.warning("payout not sent yet; released", reason=release.reason, retry_after_seconds=release.retry_after)
        try:
            await self.payout_ledger.release_payout(
                job.payout_id, self.cfg.worker_id, release.reason, release.retry_after
            )
        except DomainError as exc:
            log_.info("payout release not needed or failed; the lease will lapse", error=str(exc)[:200])

    async def _health(self, ok: bool) -> None:
        if ok != self._healthy and self._on_health is not None:
            self._healthy = ok
            with contextlib.suppress(Exception):
                await self._on_health(ok)

    def _payment_sweep(self, job: Job, log_) -> PaymentSweep:
        journal = PaymentJournal(
            job=job,
            ledger=self.ledger,
            gateway=self.gateway,
            worker_id=self.cfg.worker_id,
            may_sign=lambda: self.keeper.held,
            label=self.label,
            log=log_,
        )
        settler = Settler(
            gateway=self.gateway,
            journal=journal,
            config=self.cfg,
            confirmations=self.chain.confirmations,
            label=self.label,
            log=log_,
        )
        return PaymentSweep(
            job,
            chain=self.chain,
            gateway=self.gateway,
            ledger=self.ledger,
            keys=self.keys,
            gas_wallet=self.gas_wallet,
            policy=self.policy,
            config=self.cfg,
            journal=journal,
            settler=settler,
            log=log_,
        )

    async def _sweep(self, job: Job) -> None:
        started = time.monotonic()
        log_ = self._log.bind(payment_id=job.payment_id, asset=job.asset)
        sweep = self._payment_sweep(job, log_)
        if await self._in_slot(job.key, sweep.run, lambda r: self._release(job, r, log_), log_, "sweep"):
            metrics.SWEPT.labels(self.label, job.asset).inc()
            metrics.SWEEP_SECONDS.labels(self.label).observe(time.monotonic() - started)

    async def _release(self, job: Job, release: Release, log_) -> None:
        """Give the sweep job back to the ledger with the release's reason and retry delay
        (only this job: another job of the same payment keeps its lease)."""
        if not release.hand_back:
            # The ledger is gone: the lease lapses by itself and the next claim recovers.
            self._not_before[job.key] = time.monotonic() + release.retry_after
            self.note_error(release.reason)
            log_.warning("ledger unavailable during sweep; the lease will lapse", error=release.reason[:300])
            return
        category = release.category
        metrics.RELEASED.labels(self.label, category.value).inc()
        if category is not ReleaseCategory.STOPPING:
            self.note_error(f"{job.payment_id}: {release.reason}")
        level = log_.info if category in (ReleaseCategory.DUST, ReleaseCategory.STOPPING) else log_.warning
        level(
            "payment not swept; released",
            reason=release.reason,
            retry_after_seconds=release.retry_after,
            category=category.value,
        )
        try:
            await self.ledger.release(job.key, self.cfg.worker_id, release.reason, release.retry_after)
        except (FailedPrecondition, NotFound) as exc:
            log_.info("release not needed: lease already gone", error=str(exc)[:200])
        except DomainError as exc:
            log_.warning("release failed; the lease will lapse", error=str(exc)[:300])
