"""Leader leases in a NATS JetStream key-value bucket.

A lease is a key that only one holder can create; it lives while its holder
renews it (an update at the revision it last wrote) and expires with the
bucket's TTL when the holder stops renewing (crash, partition). Whoever creates
the key next is the new holder. Used for "one active X per chain" across
replicas (the listener's leader, the sweeper's signer).

`LeaseKeeper` runs the acquire/renew loop in the background and answers `held`
conservatively: only while the last successful write is younger than the TTL
minus a safety margin, so a holder cut off from NATS stops acting before
another replica can take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.common.nats_helpers import retry_while_electing

log = structlog.get_logger("lease")


@retry_while_electing
async def ensure_bucket(
    js: JetStreamContext, name: str, *, ttl: float | None = None, description: str = "", replicas: int = 1
) -> KeyValue:
    """The bucket, created with this TTL and `replicas` if missing (safe to race with
    other replicas; a bucket made earlier keeps its own)."""
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=name, history=1, ttl=ttl, storage=StorageType.FILE, description=description, replicas=replicas
            )
        )
    except Exception:  # noqa: BLE001 - created concurrently by another replica
        return await js.key_value(name)


@retry_while_electing
async def bucket_ttl(kv: KeyValue) -> float | None:
    """The bucket's TTL in seconds (None: no TTL). A bucket created earlier with another
    TTL keeps it; holders must renew within the bucket's TTL, not the one they wished for."""
    status = await kv.status()
    ttl = status.ttl
    return float(ttl) if ttl else None


async def effective_ttl(kv: KeyValue, wanted: float, name: str) -> float:
    """The TTL a LeaseKeeper must assume: the bucket's when it differs from `wanted`
    (a lease without TTL would never expire after a crash: refused)."""
    actual = await bucket_ttl(kv)
    if actual is None:
        raise ValueError(f"lease bucket {name!r} has no TTL: a dead holder's lease would never expire; recreate it")
    if abs(actual - wanted) > 1e-3:
        log.warning(
            "lease bucket has another TTL than configured; using the bucket's",
            bucket=name,
            bucket_ttl=actual,
            configured_ttl=wanted,
        )
    return actual


class KvLease:
    """One lease key. Not safe for concurrent use by several tasks (the keeper owns it)."""

    def __init__(self, kv: KeyValue, key: str, holder: str) -> None:
        self._kv = kv
        self.key = key
        self.holder = holder
        self._revision: int | None = None

    @property
    def revision(self) -> int | None:
        return self._revision

    async def try_acquire(self) -> bool:
        try:
            self._revision = await self._kv.create(self.key, self.holder.encode())
            return True
        except KeyWrongLastSequenceError:
            self._revision = None
            return False

    async def renew(self) -> bool:
        """False when the lease was lost (expired and taken, or deleted)."""
        if self._revision is None:
            return False
        try:
            self._revision = await self._kv.update(self.key, self.holder.encode(), last=self._revision)
            return True
        except KeyWrongLastSequenceError:
            self._revision = None
            return False

    async def release(self) -> None:
        if self._revision is None:
            return
        revision, self._revision = self._revision, None
        with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError):
            await self._kv.delete(self.key, last=revision)

    def forget(self) -> None:
        self._revision = None

    async def current_holder(self) -> str:
        try:
            entry = await self._kv.get(self.key)
            return (entry.value or b"").decode(errors="replace")
        except (KeyNotFoundError, KeyDeletedError):
            return ""


class LeaseKeeper:
    """Keeps trying to hold `lease`, renewing it every ttl/3; `held` is safe to act on."""

    def __init__(
        self,
        lease: KvLease,
        ttl: float,
        *,
        margin: float | None = None,
        on_change: Callable[[bool], None] | None = None,
        name: str = "",
    ) -> None:
        self.lease = lease
        self.ttl = ttl
        self.margin = ttl / 4 if margin is None else margin
        self._on_change = on_change
        self._name = name or lease.key
        self._valid_until = 0.0  # monotonic
        self._was_held = False
        self.changed = asyncio.Event()
        # How many times this keeper has gained the lease: a new term is a new
        # holding (the sweeper takes over its predecessor's claims once per term).
        self.term = 0

    @property
    def held(self) -> bool:
        return self.lease.revision is not None and time.monotonic() < self._valid_until

    def _set(self, held: bool) -> None:
        if held != self._was_held:
            self._was_held = held
            self.term += held
            log.info("lease gained" if held else "lease lost", lease=self._name, holder=self.lease.holder)
            self.changed.set()
            if self._on_change is not None:
                self._on_change(held)

    async def step(self) -> bool:
        """One acquire-or-renew attempt; True when the lease is held afterwards."""
        started = time.monotonic()
        try:
            if self.lease.revision is None:
                ok = await self.lease.try_acquire()
            else:
                ok = await self.lease.renew()
        except Exception as exc:  # noqa: BLE001 - NATS trouble: keep the old validity, it runs out by itself
            log.warning("lease renewal failed", lease=self._name, error=str(exc)[:300])
            ok = self.held
            if not ok:
                self.lease.forget()
        else:
            if ok:
                self._valid_until = started + self.ttl - self.margin
        self._set(self.held)
        return self.held

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.step()
                interval = self.ttl / 3 if self.held else min(1.0, self.ttl / 3)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            self._valid_until = 0.0
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.lease.release(), timeout=2.0)
            self._set(False)
