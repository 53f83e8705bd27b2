"""The ledger-rates KV bucket: one key per pair (`ETH.USD`), its value the pair's
latest reading as JSON (services/ledger/domain/rate_book.py: encode_reading), so
every ledger replica quotes the same rates. Only the replica holding the rates
lease writes (services/ledger/rate_refresher.py); every replica watches.

The bucket keeps one value per key (history 1) and no TTL: a value carries its own
observed_at, and the RateBook refuses one older than the pair's max age."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from services.ledger.domain.rate_book import PairReading, PairRule, ReadingFormatError, decode_reading, encode_reading

log = structlog.get_logger("ledger.rate_store")

RATES_BUCKET = "ledger-rates"

Apply = Callable[[str, str, PairReading], object]


def rate_key(asset: str, currency: str) -> str:
    return f"{asset.strip().upper()}.{currency.strip().upper()}"


class RateStore:
    def __init__(self, kv: KeyValue, writer: str = "") -> None:
        self._kv = kv
        self.writer = writer  # named in every value this replica writes

    async def put(self, rule: PairRule, reading: PairReading) -> None:
        await self._kv.put(rate_key(rule.asset, rule.currency), encode_reading(rule, reading, self.writer))

    async def get(self, asset: str, currency: str) -> tuple[str, str, PairReading] | None:
        try:
            entry = await self._kv.get(rate_key(asset, currency))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return self._decode(entry.key, entry.value)

    @staticmethod
    def _decode(key: str, value: bytes | None) -> tuple[str, str, PairReading] | None:
        if not value:
            return None
        try:
            return decode_reading(value)
        except ReadingFormatError as exc:
            log.warning("ignoring a malformed rate in the KV bucket", key=key, error=str(exc))
            return None

    async def watch(self, apply: Apply, stop: asyncio.Event, *, retry_seconds: float = 1.0) -> None:
        """Apply every value of the bucket, then every update, until `stop`; a failed
        watch (NATS away) is started again after `retry_seconds`."""
        while not stop.is_set():
            try:
                watcher = await self._kv.watchall()
                try:
                    while not stop.is_set():
                        try:
                            entry = await watcher.updates(timeout=1.0)
                        except TimeoutError:
                            continue
                        if entry is None or entry.operation in (KV_DEL, KV_PURGE):
                            continue
                        decoded = self._decode(entry.key, entry.value)
                        if decoded is not None:
                            apply(*decoded)
                finally:
                    with contextlib.suppress(Exception):
                        await watcher.stop()
            except Exception as exc:  # noqa: BLE001 - NATS trouble: watch again
                log.warning("rate bucket watch failed; watching again", error=str(exc)[:300])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=retry_seconds)
