"""AddressFeedService, the listener's view (PAYMESH_ADDRESS_FEED_TOKEN): the deposit
addresses to watch on a chain, a snapshot then every new one (watched_address_feed.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from paymesh.ledger.v1 import address_feed_service_pb2 as fpb
from paymesh.ledger.v1 import address_feed_service_pb2_grpc as fgrpc

from services.ledger.api.caller_check import CallerCheck
from services.ledger.api.convert import watched_address_to_pb
from services.ledger.watched_address_feed import WatchedAddressFeed


class AddressFeedServicer(fgrpc.AddressFeedServiceServicer, CallerCheck):
    """The listener's view: the deposit addresses to watch (PAYMESH_ADDRESS_FEED_TOKEN)."""

    def __init__(self, feed: WatchedAddressFeed, token: str, known_chain: Callable[[int], bool]) -> None:
        CallerCheck.__init__(self, token, "address feed", known_chain)
        self._feed = feed

    async def WatchAddresses(
        self, request: fpb.WatchAddressesRequest, context
    ) -> AsyncIterator[fpb.WatchAddressesResponse]:
        self._check(context)
        self._chain(request.chain_id)
        async for rows, complete in self._feed.stream(request.chain_id):
            yield fpb.WatchAddressesResponse(
                addresses=[watched_address_to_pb(r) for r in rows], snapshot_complete=complete
            )
