"""Apply chain events (transfers, heads, reorgs) to payments.

Each batch is applied in one transaction and acked after commit. Every effect
is idempotent: a transfer has a unique identity, confirmation and orphaning
are state transitions that a replay finds already done, and a transfer event
that arrives after the reorg that orphaned its block is ignored.

A transfer counts (state confirmed) once it has the confirmations the payment
waits for on its chain: its block is the first (services/common/confirmations.py). A transfer recorded
after the payment's cancel or expiry committed is late (domain/status.py
is_late): recording locks the payment row, as cancel and expiry do, so the
ledger's own order decides, never a block timestamp against the ledger's clock.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.chains import Chains
from services.common.confirmations import is_confirmed
from services.ledger.adapters import repository as repo
from services.ledger.domain.chain_events import ChainEvent, HeadEvent, ReorgEvent, TransferEvent
from services.ledger.domain.records import PaymentEventRecord
from services.ledger.domain.status import EventType, is_late
from services.ledger.domain.validation import utcnow
from services.ledger.metrics import CHAIN_EVENTS_APPLIED
from services.ledger.payment_state import refresh_payments

log = structlog.get_logger("ledger.chain")


class HeadCache:
    """Latest known head per chain (from head events), for new payments' from_block:
    the block a listener starts watching a new deposit address from."""

    def __init__(self) -> None:
        self.heads: dict[int, int] = {}

    def get(self, chain_id: int) -> int:
        return self.heads.get(chain_id, 0)

    def update(self, chain_id: int, number: int) -> None:
        if number > self.heads.get(chain_id, -1):
            self.heads[chain_id] = number


class ChainEventApplier:
    """Applies batches of chain events (from inbound/chain_consumer.py) to payments,
    and keeps the HeadCache up to date with what committed."""

    def __init__(
        self,
        engine: AsyncEngine,
        chains: Chains,
        heads: HeadCache,
        on_outbox: Callable[[], None],
        on_event: Callable[[PaymentEventRecord], None] | None = None,
    ) -> None:
        self._engine = engine
        self._chains = chains
        self._heads = heads
        self._on_outbox = on_outbox
        self._on_event = on_event

    async def load_heads(self) -> None:
        async with self._engine.connect() as conn:
            for chain_id, number in (await repo.chain_state.get_heads(conn)).items():
                self._heads.update(chain_id, number)

    async def apply(self, events: list[ChainEvent]) -> int:
        """Apply events in order in one transaction; returns payment events written.
        Runs of consecutive transfers of a chain are applied set-wise (a few
        statements per run, not per transfer)."""
        written = 0
        async with self._engine.begin() as conn:
            heads = await repo.chain_state.get_heads(conn)
            i = 0
            while i < len(events):
                event = events[i]
                if isinstance(event, TransferEvent):
                    run = [event]
                    while (
                        i + len(run) < len(events)
                        and isinstance(events[i + len(run)], TransferEvent)
                        and events[i + len(run)].chain_id == event.chain_id
                    ):
                        run.append(events[i + len(run)])
                    written += await self._transfers(conn, run, heads)
                    i += len(run)
                    continue
                if isinstance(event, HeadEvent):
                    written += await self._head(conn, event, heads)
                else:
                    written += await self._reorg(conn, event, heads)
                i += 1
        for chain_id, number in heads.items():
            self._heads.update(chain_id, number)
        for event in events:
            CHAIN_EVENTS_APPLIED.labels(type(event).__name__.removesuffix("Event").lower()).inc()
        if written:
            self._on_outbox()
        return written

    async def _transfers(self, conn: AsyncConnection, run: list[TransferEvent], heads: dict[int, int]) -> int:
        chain_id = run[0].chain_id
        chain = self._chains.get(chain_id)
        if chain is None:
            log.warning("transfers on a chain not in chains.yaml", chain_id=chain_id, count=len(run))
            return 0
        payments = await repo.payments.lock_payments_by_address(conn, chain_id, sorted({e.to_address for e in run}))
        head = heads.get(chain_id, 0)
        by_id = {p.id: p for p in payments.values()}
        rows = []
        for e in run:
            payment = payments.get(e.to_address)
            if payment is None:
                log.info(
                    "transfer to an address the ledger does not know", chain_id=chain_id, to=e.to_address, tx=e.tx_hash
                )
                continue
            option = payment.option_for(chain_id, e.token_address)
            rows.append(
                {
                    "chain_id": chain_id,
                    "tx_hash": e.tx_hash,
                    "log_index": e.log_index,
                    "block_hash": e.block_hash,
                    "block_number": e.block_number,
                    "block_timestamp": e.block_timestamp,
                    "from_address": e.from_address,
                    "to_address": e.to_address,
                    "token_address": e.token_address,
                    "amount": e.amount,
                    "payment_id": payment.id,
                    "state": "confirmed" if is_confirmed(head, e.block_number, payment.depth_on(chain_id)) else "seen",
                    # An asset no option asks for is recorded (the funds are real) but not credited.
                    "credited": option is not None,
                    # From the row locked above: a cancel or expiry that committed first makes it late.
                    "late": is_late(
                        e.block_timestamp,
                        expires_at=payment.expires_at,
                        cancelled_at=payment.cancelled_at,
                        expired_at=payment.expired_at,
                    ),
                    "asset": chain.symbol_of(e.token_address),
                    "kind": "payment",
                    # Credited at the locked quote all the same, and flagged (BTCPay does so too).
                    "after_quote_expiry": option is not None
                    and option.quote is not None
                    and e.block_timestamp > option.quote.expires_at,
                }
            )
        # Native coin into the address of a payment with a token option on this chain
        # may be the sweeper's own gas top-up: recorded (write-ahead) before it was
        # broadcast, so already known here. A top-up is never credited, even when the
        # payment also accepts the native coin.
        maybe_topups = [
            r
            for r in rows
            if r["token_address"] is None
            and any(o.chain_id == chain_id and not o.is_native for o in by_id[r["payment_id"]].options)
        ]
        if maybe_topups:
            topups = await repo.sweeps.gas_topups_among(conn, [r["tx_hash"] for r in maybe_topups])
            for r in maybe_topups:
                if (r["tx_hash"], r["payment_id"]) in topups:
                    r["kind"], r["credited"], r["after_quote_expiry"] = "gas_topup", False, False
        touched = await repo.transfers.insert_transfers(conn, rows)  # replays and orphaned blocks are skipped
        changed = [p for p in payments.values() if p.id in touched]
        return len(await refresh_payments(conn, changed, utcnow(), on_event=self._on_event))

    async def _head(self, conn: AsyncConnection, e: HeadEvent, heads: dict[int, int]) -> int:
        chain = self._chains.get(e.chain_id)
        if chain is None:
            return 0
        if e.number < heads.get(e.chain_id, -1):
            return 0  # an older head replayed
        await repo.chain_state.set_head(conn, e.chain_id, e.number, e.hash)
        heads[e.chain_id] = e.number
        payment_ids = await repo.transfers.confirm_transfers(conn, e.chain_id, e.number)
        payments = await repo.payments.lock_payments(conn, payment_ids)
        return len(await refresh_payments(conn, payments, utcnow(), on_event=self._on_event))

    async def _reorg(self, conn: AsyncConnection, e: ReorgEvent, heads: dict[int, int]) -> int:
        payment_ids = await repo.chain_state.orphan_blocks(conn, e.chain_id, list(e.orphaned_block_hashes))
        await repo.chain_state.set_head(conn, e.chain_id, e.new_head_number, e.new_head_hash, force=True)
        heads[e.chain_id] = e.new_head_number
        payments = await repo.payments.lock_payments(conn, payment_ids)
        written = len(
            await refresh_payments(conn, payments, utcnow(), extra_event=EventType.REORGED, on_event=self._on_event)
        )
        if payment_ids:
            log.warning("reorg rolled back transfers", chain_id=e.chain_id, payments=len(payment_ids))
        return written
