"""One chain on one replica: the address feed always runs (a standby is ready
to take over with a warm watched set); the head follower and the scanner run
only while this replica holds the chain's lease, renewed every third of its TTL.
A lost lease stops them at once; a dead leader's lease expires and a standby
takes it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import structlog

from services.common.chains import ChainConfig
from services.common.lease import KvLease
from services.listener import metrics
from services.listener.adapters.address_subscription import AddressFeed
from services.listener.adapters.chain_rpc import HttpRpc
from services.listener.adapters.heads import HeadFollower, Mode, set_mode_metric
from services.listener.scanner import ChainScanner

log = structlog.get_logger("listener.worker")


class ChainWorker:
    def __init__(
        self,
        chain: ChainConfig,
        rpc: HttpRpc,
        follower: HeadFollower,
        scanner: ChainScanner,
        feed: AddressFeed,
        lease: KvLease,
        lease_ttl: float,
    ) -> None:
        self.chain = chain
        self.chain_id = chain.chain_id
        self.rpc = rpc
        self.follower = follower
        self.scanner = scanner
        self.feed = feed
        self.lease = lease
        self._ttl = lease_ttl
        self.leader = False
        self.leader_name = ""
        self.last_error = ""

    # ------------------------------------------------------------------ status

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
            self.feed.last_error,
            self.last_error,
        ):
            if text:
                return text
        return ""

    # ------------------------------------------------------------------ loop

    async def run(self) -> None:
        label = str(self.chain_id)
        with contextlib.suppress(Exception):
            await self.scanner.prime()
        feed = asyncio.create_task(self.feed.run(), name=f"feed-{self.chain_id}")
        try:
            while True:
                try:
                    acquired = await self.lease.try_acquire()
                except Exception as exc:  # noqa: BLE001 - NATS trouble: stay standby, retry
                    acquired = False
                    self.last_error = f"lease: {type(exc).__name__}: {exc}"[:300]
                if acquired:
                    await self._lead()
                    continue
                metrics.LEADER.labels(label).set(0)
                set_mode_metric(self.chain_id, Mode.STANDBY)
                with contextlib.suppress(Exception):
                    self.leader_name = await self.lease.current_holder()
                    await self.scanner.refresh_standby()
                await asyncio.sleep(self._ttl / 4 * (0.75 + random.random() / 2))
        finally:
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feed
            if self.lease.revision is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.lease.release(), timeout=2)
                log.info("lease released", chain_id=self.chain_id)
            self.leader = False

    async def _lead(self) -> None:
        label = str(self.chain_id)
        self.leader = True
        self.leader_name = self.lease.holder
        metrics.LEADER.labels(label).set(1)
        log.info("leading chain", chain_id=self.chain_id, replica=self.lease.holder)
        tasks = [
            asyncio.create_task(self._renew(), name=f"lease-{self.chain_id}"),
            asyncio.create_task(self.follower.run(), name=f"heads-{self.chain_id}"),
            asyncio.create_task(self.scanner.run(), name=f"scan-{self.chain_id}"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error(
                        "chain task failed", chain_id=self.chain_id, task=task.get_name(), error=repr(task.exception())
                    )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.leader = False
            metrics.LEADER.labels(label).set(0)
            set_mode_metric(self.chain_id, Mode.STANDBY)
        log.warning("no longer leading chain", chain_id=self.chain_id)
        if self.lease.revision is not None:  # stopped for another reason than a lost lease: let another replica lead
            with contextlib.suppress(Exception):
                await self.lease.release()

    async def _renew(self) -> None:
        """Returns when the lease is lost (taken by another replica, or not
        renewed for a whole TTL because NATS is unreachable)."""
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                if not await self.lease.renew():
                    log.warning("lease lost to another replica", chain_id=self.chain_id)
                    return
                last_ok = time.monotonic()
            except Exception as exc:  # noqa: BLE001
                self.last_error = f"lease renewal: {type(exc).__name__}: {exc}"[:300]
                log.warning("lease renewal failed", chain_id=self.chain_id, error=self.last_error)
                if time.monotonic() - last_ok > self._ttl * 0.8:
                    log.error("lease not renewed in time; stepping down", chain_id=self.chain_id)
                    return
