"""The watched-address feed the ledger serves to listeners (AddressFeedService):
for one chain, a snapshot of the deposit addresses worth watching, then every new
address as it commits.

Gap-free without polling tricks: reads run in REPEATABLE READ, and the cursor
is the snapshot's xmin (every transaction below it has finished). Each poll
returns the rows whose inserting transaction is at or above the cursor; rows
already sent are remembered only until the cursor passes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.adapters import repository as repo
from services.ledger.domain.records import WatchedAddressRecord
from services.ledger.domain.validation import utcnow

SNAPSHOT_CHUNK = 5000


class WatchedAddressFeed:
    """Streams one chain's watched addresses; `wakeup` (set when CreatePayment
    commits an address) ends the wait between polls early."""

    def __init__(self, engine: AsyncEngine, wakeup: asyncio.Event, poll: float = 0.25) -> None:
        self._engine = engine
        self._wakeup = wakeup
        self._poll = poll

    async def stream(self, chain_id: int) -> AsyncIterator[tuple[list[WatchedAddressRecord], bool]]:
        """Yields (addresses, snapshot_complete) chunks until cancelled."""
        sent: dict[int, int] = {}  # id -> txid, for rows at or above the cursor
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                horizon = await repo.watched_addresses.xmin_horizon(conn)
                now = utcnow()
                chunks = repo.watched_addresses.active_addresses(conn, chain_id, now=now, chunk=SNAPSHOT_CHUNK)
                async for rows in chunks:
                    for record, txid in rows:
                        if txid >= horizon:
                            sent[record.id] = txid
                    yield [r for r, _ in rows], False
                yield [], True
        while True:
            self._wakeup.clear()
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    new_horizon = await repo.watched_addresses.xmin_horizon(conn)
                    rows = await repo.watched_addresses.addresses_since(conn, chain_id, horizon)
            fresh = [r for r, txid in rows if r.id not in sent]
            for record, txid in rows:
                sent[record.id] = txid
            horizon = new_horizon
            for row_id in [i for i, txid in sent.items() if txid < horizon]:
                del sent[row_id]
            if fresh:
                yield sorted(fresh, key=lambda r: r.id), True
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll)
            except TimeoutError:
                pass
