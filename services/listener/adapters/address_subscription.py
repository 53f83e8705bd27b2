"""The listener's subscription to the watched addresses: a client of the
ledger's AddressFeedService.WatchAddresses stream (the ledger serves the feed;
this is the subscriber). A snapshot, then each new address, handed to `sink` as
plain (address bytes, from_block, created_at) records; `on_snapshot` once the
snapshot is complete. Reconnects with backoff for ever (and takes the snapshot
again; addresses already known are ignored by the sink)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import grpc
import structlog
from paymesh.ledger.v1 import address_feed_service_pb2 as fpb
from paymesh.ledger.v1 import address_feed_service_pb2_grpc as fgrpc

from services.common.errors import DomainError
from services.common.grpc_client import ServiceClient
from services.listener import metrics
from services.listener.domain.addresses import BadAddress, address_bytes

log = structlog.get_logger("listener.addresses")

# (address, from_block, created_at as unix seconds)
NewAddress = tuple[bytes, int, float]


class AddressSubscription:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        token: str,
        chain_id: int,
        sink: Callable[[list[NewAddress]], None],
        on_snapshot: Callable[[], None],
        *,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
    ) -> None:
        self._ledger = ServiceClient(
            fgrpc.AddressFeedServiceStub(channel),
            peer="ledger",
            token=token,
            timeout=0,
            token_variable="PAYMESH_ADDRESS_FEED_TOKEN",
        )
        self.chain_id = chain_id
        self._sink = sink
        self._on_snapshot = on_snapshot
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.connected = False
        self.snapshot_done = False
        self.last_error = ""

    async def run(self) -> None:
        delay = self._backoff_initial
        while True:
            stream = self._ledger.stream(
                "streaming watched addresses", "WatchAddresses", fpb.WatchAddressesRequest(chain_id=self.chain_id)
            )
            try:
                async for reply in stream:
                    if not self.connected:
                        self.connected = True
                        self.last_error = ""
                    delay = self._backoff_initial
                    self._sink(self._parse(reply))
                    if reply.snapshot_complete and not self.snapshot_done:
                        self.snapshot_done = True
                        log.info("watched addresses loaded", chain_id=self.chain_id)
                        self._on_snapshot()
                error = "stream ended"
            except DomainError as exc:
                error = exc.message
            except Exception as exc:  # noqa: BLE001 - never give up on the feed
                error = f"{type(exc).__name__}: {exc}"
            self.connected = False
            self.last_error = error[:500]
            metrics.RECONNECTS.labels(str(self.chain_id), "address_feed").inc()
            log.warning(
                "address feed from the ledger lost; reconnecting",
                chain_id=self.chain_id,
                error=self.last_error,
                retry_in=round(delay, 2),
            )
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._backoff_max)

    def _parse(self, reply: fpb.WatchAddressesResponse) -> list[NewAddress]:
        out: list[NewAddress] = []
        for item in reply.addresses:
            if item.chain_id and item.chain_id != self.chain_id:
                continue
            try:
                address = address_bytes(item.address)
            except BadAddress as exc:
                log.error("ledger sent a malformed address; ignored", chain_id=self.chain_id, error=str(exc))
                continue
            created = item.created_at.seconds + item.created_at.nanos / 1e9
            out.append((address, item.from_block, created))
        return out
