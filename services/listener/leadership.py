"""One chain on one replica: who scans it. The address subscription always runs
(a standby is ready to take over with a warm watched set); the head follower
and the scanner run only while this replica holds the chain's lease.

The lease is the shared one of services/common/lease.py, the same as the
sweeper's signer lease: a LeaseKeeper creates the key `chain-<id>` in the
bucket `PAYMESH_LEASE_BUCKET` and renews it every third of the bucket's TTL; a
standby keeps trying to create it. A dead leader's key expires with the TTL
and a standby takes it; a graceful stop deletes it, so a standby takes over
at once.

The stop-acting rule (one rule, the sweeper's too): this replica publishes a
chain's events only while `LeaseKeeper.held` is true, that is while the lease
is ours and its last successful write began less than TTL - margin ago (the
margin is a quarter of the TTL). `held` turns false
- at once when a renewal finds the key taken or gone (the lease is lost), and
- by itself when renewals keep failing for TTL - margin (NATS unreachable: not
  renewed in time), which is before the key can expire and another replica
  can take it.
The scanner checks `held` before every publish (ChainScanner._publish) and
stops when it is false; this loop also stops the head follower and the
scanner as soon as it sees it false, and leads again once the keeper holds the
lease again.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from services.common.chains import ChainConfig
from services.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from services.common.lease import LeaseKeeper
from services.listener import metrics
from services.listener.adapters.address_subscription import AddressSubscription
from services.listener.adapters.chain_rpc import HttpRpc
from services.listener.adapters.heads import HeadFollower, Mode, set_mode_metric
from services.listener.scanner import ChainScanner, NotLeading, ScanJob

log = structlog.get_logger("listener.leadership")


@dataclass(frozen=True)
class ChainStatus:
    """What GetStatus reports for one chain on this replica."""

    chain_id: int
    name: str
    head: int
    cursor: int
    watched_addresses: int
    mode: Mode
    leader: bool
    last_error: str
    last_head_at: float  # unix seconds of the last new head (while leading); 0: none
    internal_transfers: str
    endpoints: tuple = ()  # rpc_pool.EndpointStatus of each provider

    @property
    def lag(self) -> int:
        return max(self.head - self.cursor, 0)


class ChainLeadership:
    def __init__(
        self,
        chain: ChainConfig,
        rpc: HttpRpc,
        follower: HeadFollower,
        scanner: ChainScanner,
        subscription: AddressSubscription,
        keeper: LeaseKeeper,
        *,
        max_rescan_blocks: int,
    ) -> None:
        self.chain = chain
        self.chain_id = chain.chain_id
        self.rpc = rpc
        self.follower = follower
        self.scanner = scanner
        self.subscription = subscription
        self.keeper = keeper
        self._max_rescan = max_rescan_blocks
        self._scanning = False
        self.leader_name = ""
        self._keeper_stop = asyncio.Event()
        self._keeper_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ status

    @property
    def leader(self) -> bool:
        """True while this replica scans the chain (and may publish: see the rule above)."""
        return self._scanning and self.keeper.held

    @property
    def mode(self) -> Mode:
        return self.follower.mode if self.leader else Mode.STANDBY

    @property
    def healthy(self) -> bool:
        """False when the chain's RPC is unreachable (or every scan step fails)."""
        if not self.leader:
            return True
        return self.follower.reachable and self.scanner.consecutive_failures < 5

    @property
    def head(self) -> int:
        if self.leader and self.follower.latest is not None:
            return self.follower.latest.number
        return self.scanner.saved_head

    def errors(self) -> str:
        for text in (
            self.scanner.last_error,
            self.follower.last_error,
            self.rpc.last_error,
            self.subscription.last_error,
        ):
            if text:
                return text
        return ""

    def status(self) -> ChainStatus:
        leader = self.leader
        return ChainStatus(
            chain_id=self.chain_id,
            name=self.chain.name,
            head=self.head,
            cursor=self.scanner.cursor or 0,
            watched_addresses=len(self.scanner.watched),
            mode=self.mode,
            leader=leader,
            last_error=self.errors(),
            last_head_at=self.follower.latest_at if leader else 0.0,
            internal_transfers=self.chain.internal_transfers,
            endpoints=tuple(self.rpc.status()) if hasattr(self.rpc, "status") else (),
        )

    # ------------------------------------------------------------------ operator

    async def rescan(self, from_block: int, to_block: int) -> ScanJob:
        """Scan blocks from_block..to_block again (transfers only) on the leader; returns when done."""
        a, b = from_block, to_block
        if a > b:
            raise InvalidArgument(f"from_block ({a}) is after to_block ({b}); the range is inclusive: from <= to")
        if b - a + 1 > self._max_rescan:
            raise InvalidArgument(
                f"the range has {b - a + 1} blocks; at most {self._max_rescan} per Rescan: split it into smaller ranges"
            )
        if not self.leader:
            holder = self.leader_name or "another replica"
            raise FailedPrecondition(
                f"this replica is standby for chain {self.chain_id}; send Rescan to the leader ({holder})"
            )
        latest = self.follower.latest or await self.follower.poll_once()
        if latest is None:
            raise Unavailable(f"chain {self.chain_id}'s RPC is unreachable: {self.errors() or 'no head yet'}")
        head = latest.number
        if b > head:
            raise InvalidArgument(f"to_block {b} is beyond the chain head {head}; wait for the block or lower to_block")
        return await self.scanner.rescan(a, b)

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        with contextlib.suppress(Exception):
            await self.scanner.prime()
        subscription = asyncio.create_task(self.subscription.run(), name=f"subscription-{self.chain_id}")
        self._start_keeper()
        try:
            while True:
                if self.keeper.held:
                    await self._lead()
                else:
                    await self._stand_by()
        finally:
            subscription.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await subscription
            # Only now that nothing scans any more: the keeper deletes the key on its way out.
            held = self.keeper.lease.revision is not None
            await self._stop_keeper()
            if held:
                log.info("lease released", chain_id=self.chain_id)

    def _start_keeper(self) -> None:
        self._keeper_stop = asyncio.Event()
        self._keeper_task = asyncio.create_task(self.keeper.run(self._keeper_stop), name=f"lease-{self.chain_id}")

    async def _stop_keeper(self) -> None:
        self._keeper_stop.set()
        if self._keeper_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._keeper_task, timeout=5)
            self._keeper_task = None

    async def _stand_by(self) -> None:
        """Until the keeper holds the lease: follow the leader's saved state (for
        status, and to forget pending addresses it has covered)."""
        label = str(self.chain_id)
        while True:
            # Cleared before looking, so a change while we look is not missed.
            self.keeper.changed.clear()
            if self.keeper.held:
                return
            metrics.LEADER.labels(label).set(0)
            set_mode_metric(self.chain_id, Mode.STANDBY)
            with contextlib.suppress(Exception):
                self.leader_name = await self.keeper.lease.current_holder()
                await self.scanner.refresh_standby()
            # The keeper competes for the lease by itself; this is only how fresh a
            # standby's status is (the leader saves its state every step).
            await _wait_for(self.keeper.changed, self.keeper.ttl / 4)

    async def _lead(self) -> None:
        """Run the head follower and the scanner until `held` turns false (the
        scanner may see it first: it then ends with NotLeading). Either ending
        otherwise is a bug: logged, and the lease is handed back, so that
        another replica may lead."""
        label = str(self.chain_id)
        self._scanning = True
        self.leader_name = self.keeper.lease.holder
        metrics.LEADER.labels(label).set(1)
        log.info("leading chain", chain_id=self.chain_id, replica=self.keeper.lease.holder)
        tasks = [
            asyncio.create_task(self.follower.run(), name=f"heads-{self.chain_id}"),
            asyncio.create_task(self.scanner.run(), name=f"scan-{self.chain_id}"),
        ]
        ended: list[asyncio.Task] = []
        try:
            while True:
                self.keeper.changed.clear()
                if not self.keeper.held:
                    break
                # `held` also turns false by the clock while a renewal hangs, with no
                # event: look again every half margin, well before the key can expire
                # (the scanner checks it before each publish in any case).
                changed = asyncio.ensure_future(self.keeper.changed.wait())
                try:
                    await asyncio.wait(
                        [*tasks, changed],
                        timeout=max(self.keeper.margin / 2, 0.05),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    changed.cancel()
                ended = [t for t in tasks if t.done()]
                if ended:
                    break
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._scanning = False
            metrics.LEADER.labels(label).set(0)
            set_mode_metric(self.chain_id, Mode.STANDBY)
        failed = [t for t in ended if t.cancelled() or not isinstance(t.exception(), NotLeading)]
        for task in failed:
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "chain task failed", chain_id=self.chain_id, task=task.get_name(), error=repr(task.exception())
                )
        log.warning("no longer leading chain", chain_id=self.chain_id)
        if failed and self.keeper.held:
            # Stopped for another reason than a lost lease: let another replica lead
            # (the keeper deletes the key on its way out, then competes again).
            await self._stop_keeper()
            self._start_keeper()


async def _wait_for(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=timeout)
