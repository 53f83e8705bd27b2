"""The listener's one stop-acting rule (services/listener/leadership.py), on
the shared LeaseKeeper over an in-memory key-value bucket, no NATS: a replica
scans only while `held`; it stops when its lease is taken (at once) or not
renewed in time (while the renewal still hangs), competes again, and on a
graceful stop deletes its key only after the scan stopped. And the scanner
publishes nothing once the lease is not held."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import pytest
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from services.common.chains import ChainConfig
from services.common.lease import KvLease, LeaseKeeper
from services.listener.adapters.heads import Mode
from services.listener.adapters.range_reader import RangeRead
from services.listener.domain.addresses import WatchedSet
from services.listener.domain.backfill import LateAddresses
from services.listener.domain.chaindata import BlockHeader
from services.listener.domain.events import Head
from services.listener.leadership import ChainLeadership
from services.listener.scanner import ChainScanner, NotLeading, ScanConfig

pytestmark = pytest.mark.unit

TTL = 0.6  # renewed every 0.2 s, held for 0.45 s after a successful write
KEY = "chain-7"
CHAIN = ChainConfig(chain_id=7, name="seven", rpc_url="http://node", confirmations=2, block_time_seconds=1)


async def until(event: asyncio.Event, timeout: float = 10.0) -> None:
    await asyncio.wait_for(event.wait(), timeout)


class FakeKv:
    """The lease bucket (one key), in memory. `hang()` holds every update from then
    on, as an unreachable NATS does, until `unhang(error)`."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.entries: dict[str, tuple[int, bytes]] = {}
        self._revisions = iter(range(1, 10**6))
        self._gate: asyncio.Future | None = None
        self.updates_held = 0
        self.create_refused = asyncio.Event()

    def hang(self) -> None:
        self._gate = asyncio.get_running_loop().create_future()

    def unhang(self, error: Exception) -> None:
        gate, self._gate = self._gate, None
        if gate is not None and not gate.done():
            gate.set_exception(error)

    def steal(self, holder: bytes) -> None:
        self.entries[KEY] = (next(self._revisions), holder)

    async def create(self, key: str, value: bytes) -> int:
        if key in self.entries:
            self.create_refused.set()
            raise KeyWrongLastSequenceError()
        self.entries[key] = (revision := next(self._revisions), value)
        return revision

    async def update(self, key: str, value: bytes, last: int) -> int:
        if self._gate is not None:
            self.updates_held += 1
            await self._gate
        if self.entries.get(key, (None,))[0] != last:
            raise KeyWrongLastSequenceError()
        self.entries[key] = (revision := next(self._revisions), value)
        return revision

    async def delete(self, key: str, last: int) -> None:
        if self.entries.get(key, (None,))[0] == last:
            del self.entries[key]
            self.log.append("lease deleted")

    async def get(self, key: str) -> SimpleNamespace:
        if key not in self.entries:
            raise KeyNotFoundError()
        revision, value = self.entries[key]
        return SimpleNamespace(revision=revision, value=value)


class Task:
    """A fake long-running part (head follower, scanner, subscription): runs until cancelled."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.runs = 0
        self.last_error = ""
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        self.stopped.clear()
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.started.clear()
            self.stopped.set()
            self.log.append(f"{self.name} stopped")


def leadership_over(kv: FakeKv, log: list[str]) -> tuple[ChainLeadership, Task, Task]:
    follower, scanning, subscription = Task("heads", log), Task("scan", log), Task("subscription", log)
    follower.mode, follower.reachable, follower.latest, follower.latest_at = Mode.WEBSOCKET, True, None, 0.0
    scanner = SimpleNamespace(
        run=scanning.run,
        prime=_nothing,
        refresh_standby=_nothing,
        cursor=0,
        saved_head=0,
        watched=WatchedSet(),
        consecutive_failures=0,
        last_error="",
    )
    leadership = ChainLeadership(
        CHAIN,
        SimpleNamespace(last_error=""),
        follower,
        scanner,
        subscription,
        LeaseKeeper(KvLease(kv, KEY, "me"), TTL),
        max_rescan_blocks=100,
    )
    return leadership, follower, scanning


async def _nothing() -> None:
    return None


@contextlib.asynccontextmanager
async def running(leadership: ChainLeadership):
    task = asyncio.create_task(leadership.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_lease_taken_by_another_replica_stops_the_scan_and_is_competed_for_again():
    log: list[str] = []
    kv = FakeKv(log)
    leadership, follower, scanning = leadership_over(kv, log)
    async with running(leadership):
        await until(scanning.started)
        assert leadership.leader and leadership.status().mode is Mode.WEBSOCKET
        kv.steal(b"other")  # our key expired and another replica created it
        await until(scanning.stopped)
        assert follower.stopped.is_set() and not leadership.leader
        assert leadership.status().mode is Mode.STANDBY and leadership.status().leader is False
        del kv.entries[KEY]  # the other replica stopped gracefully
        await until(scanning.started)
        assert scanning.runs == 2 and leadership.leader and kv.entries[KEY][1] == b"me"
        assert leadership.keeper.term == 2  # held twice: the sweeper takes over claims once per term


async def test_renewals_that_hang_stop_the_scan_while_they_still_hang():
    """Not renewed in time: `held` runs out by the clock, with no answer (and no
    event) from the renewal; the scan stops before the key could expire."""
    log: list[str] = []
    kv = FakeKv(log)
    leadership, follower, scanning = leadership_over(kv, log)
    async with running(leadership):
        await until(scanning.started)
        kv.hang()
        await until(scanning.stopped)
        assert kv.updates_held == 1  # the renewal is still waiting for NATS
        assert KEY in kv.entries and not leadership.leader and follower.stopped.is_set()
        kv.create_refused.clear()
        kv.unhang(TimeoutError("nats: timeout"))
        # NATS is back, the old key still there (its TTL has not run out in this
        # fake): the replica tries to create it and waits; it never renews a key
        # it may have lost in the meantime.
        await until(kv.create_refused)
        assert not leadership.leader and scanning.runs == 1
        del kv.entries[KEY]  # the key expired
        await until(scanning.started)
        assert leadership.leader


async def test_a_graceful_stop_deletes_the_key_only_after_the_scan_stopped():
    log: list[str] = []
    kv = FakeKv(log)
    leadership, _follower, scanning = leadership_over(kv, log)
    async with running(leadership):
        await until(scanning.started)
    assert KEY not in kv.entries  # a standby takes over at once
    assert log.index("scan stopped") < log.index("lease deleted")
    assert log.index("heads stopped") < log.index("lease deleted")


# ---------------------------------------------------------------- the scanner's side of the rule


def header(n: int) -> BlockHeader:
    return BlockHeader(n, f"0x{n:064x}", f"0x{n - 1:064x}" if n else "0x" + "00" * 32, 1_700_000_000 + n)


class Node:
    """What the scanner reads and publishes through, in memory: a chain that only grows."""

    def __init__(self, head: int) -> None:
        self.latest = header(head)
        self.latest_at = 0.0
        self.changed = asyncio.Event()
        self.last_error = ""
        self.published: list = []
        self.saved: list = []

    # the head follower
    async def poll_once(self) -> BlockHeader:
        return self.latest

    def grow(self, head: int) -> None:
        self.latest = header(head)
        self.changed.set()

    # the range reader
    async def read(self, a: int, b: int, *, parent=None, scanned=None) -> RangeRead:
        return RangeRead([header(n) for n in range(a, b + 1)], [])

    async def header(self, n: int) -> BlockHeader:
        return header(n)

    # the event publisher
    async def publish(self, events) -> int:
        self.published.extend(events)
        return len(events)

    # the state store
    async def load(self):
        return None

    async def peek(self):
        return None

    async def save(self, state) -> None:
        self.saved.append(state.cursor)


async def test_the_scanner_publishes_nothing_once_the_lease_is_not_held():
    node = Node(head=5)
    leading = True
    scanner = ChainScanner(
        CHAIN,
        node,
        node,
        node,
        node,
        WatchedSet(),
        LateAddresses(60),
        ScanConfig(start_block=0, idle_wait_seconds=0.05),
        leading=lambda: leading,
    )
    scanner.snapshot_loaded()
    task = asyncio.create_task(scanner.run())
    await until(scanner.idle)  # caught up: blocks 0..5 published, then the cursor saved
    top = header(5)
    assert scanner.cursor == 5 and node.published == [Head(7, 5, top.hash, top.parent_hash, top.timestamp)]
    leading = False  # the lease was lost, or not renewed in time
    node.grow(8)
    with pytest.raises(NotLeading):
        await asyncio.wait_for(task, 10)
    assert [e.number for e in node.published if isinstance(e, Head)] == [5]
    assert scanner.cursor == 5 and node.saved[-1] == 5 and not scanner.running
