"""Keeps the RateBook fresh: fetches every pair of rates.yaml every `refresh_seconds`
and shares what it read with every other ledger replica.

Guarantees:

- a round is bounded: every pair is fetched concurrently, each within
  `fetch_timeout` (5 s); a pair that fails or times out keeps its last good rate
  (which the RateBook refuses once it is older than the pair's max age) and records
  the error, which the RateBook's refusal quotes;
- one writer: only the replica holding the KvLease `rates` in `ledger-leases`
  fetches and writes the `ledger-rates` bucket (services/ledger/adapters/rate_store.py),
  and it checks the lease before writing; every replica, the writer included,
  watches the bucket and applies what it reads, so all replicas quote the same rates.
  When the writer stops renewing (crash), another replica takes the lease within
  the lease TTL and starts fetching; a graceful stop releases it at once;
- without NATS (`nc` None) a replica fetches for itself alone.

`start_rates` is what the ledger's app.py calls: it loads rates.yaml (None when the
default file is absent), builds the sources, runs the first round (or reads the
bucket, on a replica that is not the writer) within a bounded wait, so a freshly
started ledger can quote at once, and starts the loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import socket
from datetime import UTC, datetime
from typing import Any

import structlog

from services.common.chains import Chains
from services.common.lease import KvLease, LeaseKeeper, effective_ttl, ensure_bucket
from services.common.nats_helpers import replicas_for
from services.ledger import metrics
from services.ledger.adapters.rate_sources import RateSource, Sources, build_sources
from services.ledger.adapters.rate_sources.base import TOTAL_TIMEOUT_SECONDS, Clock, utc_now
from services.ledger.adapters.rate_sources.fixed import FixedSource
from services.ledger.adapters.rate_store import RATES_BUCKET, RateStore
from services.ledger.domain.rate_book import PairReading, PairRule, RateBook
from services.ledger.rates_config import RatesFile, load_rates, rule_of
from services.ledger.settings import LedgerSettings

log = structlog.get_logger("ledger.rates")

LEASE_BUCKET = "ledger-leases"
LEASE_KEY = "rates"
DEFAULT_LEASE_TTL_SECONDS = 15.0
FIRST_ROUND_TIMEOUT_SECONDS = TOTAL_TIMEOUT_SECONDS + 1.0


def _fetched_source(source: RateSource) -> RateSource | None:
    """What a round asks for a pair: its source, a fixed pair's guard, nothing for an unguarded fixed pair."""
    if isinstance(source, FixedSource):
        return source.guard
    return source


class RateRefresher:
    def __init__(
        self,
        book: RateBook,
        sources: Sources,
        *,
        refresh_seconds: float,
        fetch_timeout: float = TOTAL_TIMEOUT_SECONDS,
        store: RateStore | None = None,
        keeper: LeaseKeeper | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.book = book
        self.sources = sources
        self.refresh_seconds = refresh_seconds
        self.fetch_timeout = fetch_timeout
        self.store = store
        self.keeper = keeper
        self._clock = clock
        self.rounds = 0  # rounds completed by this replica (as the writer)
        self._jobs: list[tuple[PairRule, RateSource]] = []
        for rule in book.rules():
            source = sources.by_pair.get(rule.key)
            fetched = None if source is None else _fetched_source(source)
            if fetched is not None:
                self._jobs.append((rule, fetched))

    @property
    def writer(self) -> bool:
        """True while this replica fetches and writes (holds the lease, or shares with nobody)."""
        return self.keeper is None or self.keeper.held

    async def _fetch(self, rule: PairRule, source: RateSource) -> PairReading:
        try:
            async with asyncio.timeout(self.fetch_timeout):
                rate = await source.fetch()
            return PairReading(rate)
        except TimeoutError:
            error = f"{source.description}: no answer within {self.fetch_timeout:g} s"
        except ValueError as exc:  # RateSourceError: the source's own words
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen failure: keep the others going
            log.exception("rate fetch failed unexpectedly", pair=rule.label, source=source.description)
            error = f"{source.description}: unexpected {type(exc).__name__}: {exc}"
        metrics.RATE_FETCH_ERRORS.labels(rule.asset, rule.currency, source.kind).inc()
        return PairReading(None, error[:500], self._clock())

    async def refresh_once(self) -> None:
        """One round: fetch every pair concurrently (each within fetch_timeout), apply
        the readings to the book, and, while this replica holds the lease, write them
        to the bucket."""
        readings = await asyncio.gather(*(self._fetch(rule, source) for rule, source in self._jobs))
        for (rule, _), reading in zip(self._jobs, readings, strict=True):
            previous = self.book.reading(rule.asset, rule.currency)
            self.book.apply(rule.asset, rule.currency, reading)
            if reading.error and (previous is None or previous.error != reading.error):
                log.warning("rate source failed", pair=rule.label, error=reading.error)
        self.rounds += 1
        if self.store is not None and self.writer:
            await self._share()

    async def _share(self) -> None:
        assert self.store is not None
        store = self.store

        async def put(rule: PairRule) -> None:
            reading = self.book.reading(rule.asset, rule.currency)
            if reading is not None:
                await store.put(rule, reading)

        results = await asyncio.gather(
            *(asyncio.wait_for(put(rule), timeout=self.fetch_timeout) for rule, _ in self._jobs),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning("could not share rates in the KV bucket", failed=len(failed), error=str(failed[0])[:300])

    def apply_shared(self, asset: str, currency: str, reading: PairReading) -> None:
        """A reading from the bucket (another replica's, or this one's own write)."""
        self.book.apply(asset, currency, reading)

    async def load_shared(self) -> None:
        """Read the bucket's current value of every pair once (a replica that is not the writer, at start)."""
        if self.store is None:
            return
        for rule, _ in self._jobs:
            found = await self.store.get(rule.asset, rule.currency)
            if found is not None:
                self.apply_shared(*found)

    async def run(self, stop: asyncio.Event) -> None:
        """Every refresh_seconds: a round, while this replica is the writer."""
        try:
            while not stop.is_set():
                metrics.RATES_WRITER.set(1 if self.writer and self.store is not None else 0)
                if self.writer:
                    try:
                        await self.refresh_once()
                    except Exception:  # noqa: BLE001 - never let the loop die
                        log.exception("rate refresh round failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.refresh_seconds)
        finally:
            metrics.RATES_WRITER.set(0)
            await self.sources.aclose()

    def export_ages(self) -> None:
        """Point the age gauge of every pair at this book (read at scrape time)."""
        for rule in self.book.rules():

            def age(rule: PairRule = rule) -> float:
                value = self.book.age_seconds(rule.asset, rule.currency, datetime.now(UTC))
                return math.inf if value is None else value

            metrics.RATE_AGE.labels(rule.asset, rule.currency).set_function(age)


def load_rates_file(settings: LedgerSettings, chains: Chains) -> RatesFile | None:
    """rates.yaml, or None when the default path is absent (no fiat pricing). A path
    set explicitly (PAYMESH_RATES_FILE) must exist."""
    path = settings.rates_file
    if not path.exists() and "rates_file" not in settings.model_fields_set:
        log.info("no rates file: payments cannot be priced in fiat", path=str(path))
        return None
    return load_rates(path, chains)


def default_holder() -> str:
    return f"ledger-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


async def start_rates(
    settings: LedgerSettings,
    chains: Chains,
    nc: Any,
    stop_event: asyncio.Event,
    *,
    holder: str | None = None,
    lease_ttl: float = DEFAULT_LEASE_TTL_SECONDS,
    first_round_timeout: float = FIRST_ROUND_TIMEOUT_SECONDS,
    config: RatesFile | None = None,
) -> tuple[RateBook | None, list[asyncio.Task]]:
    """Load rates.yaml (settings.rates_file; `config` instead, if given), start the
    refresher and return (the RateBook, its tasks). (None, []) when the default file
    is absent. Before returning, the first round has completed or failed per pair
    (a replica that is not the writer has read the bucket instead), within
    `first_round_timeout`. The tasks end when `stop_event` is set (the lease is then
    released, so another replica takes over at once). `nc`: a connected NATS client
    (None: this replica fetches for itself, sharing nothing). RatesConfigError when
    the file is invalid."""
    config = config or load_rates_file(settings, chains)
    if config is None:
        return None, []
    book = RateBook([rule_of(entry) for entry in config.rates], config.lock_window)
    sources = build_sources(config, chains)
    store: RateStore | None = None
    keeper: LeaseKeeper | None = None
    if nc is not None:
        holder = holder or default_holder()
        js = nc.jetstream()
        replicas = replicas_for(nc, settings.nats_replicas)
        store = RateStore(
            await ensure_bucket(js, RATES_BUCKET, description="ledger rates, one key per pair", replicas=replicas),
            holder,
        )
        lease_kv = await ensure_bucket(
            js,
            LEASE_BUCKET,
            ttl=lease_ttl,
            description="ledger leases (rates: the replica that fetches rates)",
            replicas=replicas,
        )
        ttl = await effective_ttl(lease_kv, lease_ttl, LEASE_BUCKET)
        keeper = LeaseKeeper(KvLease(lease_kv, LEASE_KEY, holder), ttl, name="ledger rates writer")
    refresher = RateRefresher(book, sources, refresh_seconds=config.refresh_seconds, store=store, keeper=keeper)
    refresher.export_ages()

    async def first_round() -> None:
        if keeper is not None:
            await keeper.step()
        if refresher.writer:
            await refresher.refresh_once()
        else:
            await refresher.load_shared()

    try:
        await asyncio.wait_for(first_round(), timeout=first_round_timeout)
    except TimeoutError:
        log.warning("the first rate round did not finish in time; quoting starts as rates arrive")
    except Exception as exc:  # noqa: BLE001 - NATS trouble at start: the loops retry
        log.warning("the first rate round failed; the loops retry", error=str(exc)[:300])
    log.info(
        "rates started",
        pairs=[rule.label for rule in book.rules()],
        writer=refresher.writer,
        usable=[r.label for r in book.rules() if _usable(book, r)],
    )
    tasks: list[asyncio.Task] = []
    if keeper is not None:
        tasks.append(asyncio.create_task(keeper.run(stop_event), name="rates-lease"))
    if store is not None:
        tasks.append(asyncio.create_task(store.watch(refresher.apply_shared, stop_event), name="rates-watch"))
    tasks.append(asyncio.create_task(_run_after_first(refresher, stop_event), name="rates-refresh"))
    return book, tasks


async def _run_after_first(refresher: RateRefresher, stop: asyncio.Event) -> None:
    """The refresh loop, starting one interval after the first round."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=refresher.refresh_seconds)
    await refresher.run(stop)


def _usable(book: RateBook, rule: PairRule) -> bool:
    try:
        book.rate(rule.asset, rule.currency, datetime.now(UTC))
    except Exception:  # noqa: BLE001 - only for the start log line
        return False
    return True
