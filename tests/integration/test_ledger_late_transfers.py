"""A cancel or an expiry the ledger committed is never undone (issue 12, item 3):
a transfer the ledger records for the payment afterwards is late, so the payment
ends PAID_AFTER_EXPIRY, never CONFIRMED, whatever its block's timestamp says.

Real anvil, listener, NATS, Postgres and ledger. anvil mines only when a test
says so, so the customer's transaction waits in the mempool while the merchant
cancels, and the block that then includes it carries a timestamp from before
the cancel (the previous block's second: block timestamps are whole seconds).
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
import pytest_asyncio
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb

from tests.support.chain import mesh, status, wait_status, wait_watching
from tests.support.ledger import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

AMOUNT = 10**15
PAYER = 1  # anvil dev account
DEPTH = 2  # the mesh's chains.yaml confirmations
DETECTED, PAID_AFTER_EXPIRY = pb.PAYMENT_STATUS_DETECTED, pb.PAYMENT_STATUS_PAID_AFTER_EXPIRY


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def net(postgres, tmp_path_factory):
    async with mesh(postgres, tmp_path_factory.mktemp("late"), database="late_transfers", confirmations=DEPTH) as m:
        await m.chain.automine(False)  # a block only when a test mines one
        async with m.listener() as app:
            m.app = app
            yield m


async def _db(net, query: str, *args):
    conn = await asyncpg.connect(net.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def event_types(net, payment_id: str) -> list[str]:
    """Every payment event the ledger wrote for the payment, in order (the outbox)."""
    rows = await _db(net, "SELECT event_type FROM outbox WHERE payment_id = $1 ORDER BY id", payment_id)
    return [r["event_type"] for r in rows]


async def watched_payment(net) -> pb.Payment:
    before = (await status(net.app.port)).watched_addresses
    payment = await net.merchant.create(amount=str(AMOUNT))
    await wait_watching(net.app.port, before + 1)
    return payment


async def in_mempool(net, to: str) -> tuple[str, str, int]:
    """The customer's transaction sent, not mined: (raw, hash, the last block's timestamp)."""
    raw, tx = await net.chain.signed(PAYER, to=to, value=AMOUNT)
    await net.chain.send_raw(raw)
    assert (await net.chain.rpc("eth_getTransactionByHash", tx))["blockNumber"] is None
    return raw, tx, int((await net.chain.block())["timestamp"], 16)


async def mine_stamped(net, timestamp: int, blocks: int = 1) -> int:
    """Mine the next block with this timestamp (the producer's word), then the rest."""
    await net.chain.rpc("evm_setNextBlockTimestamp", timestamp)
    return await net.chain.mine(blocks)


async def test_a_transfer_mined_after_a_cancel_is_late_though_its_block_time_is_earlier(net):
    payment = await watched_payment(net)
    _, tx, last_block_time = await in_mempool(net, payment.deposit_address)
    reply = await net.merchant.payments.CancelPayment(
        spb.CancelPaymentRequest(payment_id=payment.payment_id, reason="customer left"), metadata=net.merchant.auth
    )
    assert reply.payment.status == pb.PAYMENT_STATUS_CANCELLED
    cancelled_at = reply.payment.updated_at.ToDatetime(UTC)
    # The block that includes the transaction says it was made before the cancel:
    # the previous block's second (mined before the cancel was asked for).
    assert datetime.fromtimestamp(last_block_time, UTC) < cancelled_at
    block = await mine_stamped(net, last_block_time)
    assert int((await net.chain.block(block))["timestamp"], 16) == last_block_time
    seen = await wait_status(net.merchant, payment.payment_id, DETECTED)
    assert [(t.tx_hash, t.block_number, t.late) for t in seen.transfers] == [(tx, block, True)]
    await net.chain.mine(DEPTH - 1)
    final = await wait_status(net.merchant, payment.payment_id, PAID_AFTER_EXPIRY)
    assert final.amount_confirmed == str(AMOUNT)
    assert [(t.state, t.late) for t in final.transfers] == [(pb.TRANSFER_STATE_CONFIRMED, True)]
    assert await event_types(net, payment.payment_id) == ["created", "cancelled", "detected", "paid_after_expiry"]


async def test_a_transfer_mined_after_the_expiry_committed_is_late_though_its_block_is_before_expires_at(net):
    payment = await watched_payment(net)
    _, tx, last_block_time = await in_mempool(net, payment.deposit_address)
    # Due half a second after the second the block will carry (the API refuses
    # expiries under a minute, so the test moves it), then wait for the expiry job.
    expires_at = datetime.fromtimestamp(last_block_time + 0.5, UTC)
    await _db(net, "UPDATE payments SET expires_at = $1 WHERE id = $2", expires_at, payment.payment_id)
    await wait_status(net.merchant, payment.payment_id, pb.PAYMENT_STATUS_EXPIRED)
    block = await mine_stamped(net, last_block_time)  # the chain says: mined before expires_at
    seen = await wait_status(net.merchant, payment.payment_id, DETECTED)
    assert [(t.tx_hash, t.block_number, t.late) for t in seen.transfers] == [(tx, block, True)]
    await net.chain.mine(DEPTH - 1)
    final = await wait_status(net.merchant, payment.payment_id, PAID_AFTER_EXPIRY)
    assert [(t.state, t.late) for t in final.transfers] == [(pb.TRANSFER_STATE_CONFIRMED, True)]
    assert await event_types(net, payment.payment_id) == ["created", "expired", "detected", "paid_after_expiry"]


async def test_a_late_transfer_reorged_into_another_block_stays_late(net):
    payment = await watched_payment(net)
    raw, tx, last_block_time = await in_mempool(net, payment.deposit_address)
    await net.merchant.payments.CancelPayment(
        spb.CancelPaymentRequest(payment_id=payment.payment_id), metadata=net.merchant.auth
    )
    first = await mine_stamped(net, last_block_time)
    seen = await wait_status(net.merchant, payment.payment_id, DETECTED)
    orphan_hash = seen.transfers[0].block_hash
    # The block is replaced by one holding the same transaction: re-recorded after
    # the cancel, so late again, never CONFIRMED.
    await net.chain.reorg(1, [(raw, 0)])
    await net.chain.mine(DEPTH)  # the listener sees the new branch; the transfer gets its confirmations

    async def settled():
        p = await net.merchant.get(payment.payment_id)
        return p if p.status == PAID_AFTER_EXPIRY and len(p.transfers) == 2 else None

    final = await eventually(settled, timeout=20)
    by_block = {t.block_hash: t for t in final.transfers}
    assert by_block[orphan_hash].state == pb.TRANSFER_STATE_ORPHANED
    (canonical,) = [t for t in final.transfers if t.block_hash != orphan_hash]
    assert (canonical.tx_hash, canonical.block_number, canonical.state, canonical.late) == (
        tx,
        first,
        pb.TRANSFER_STATE_CONFIRMED,
        True,
    )
    assert "confirmed" not in await event_types(net, payment.payment_id)


async def test_a_transfer_recorded_before_a_cancel_keeps_its_status_and_the_cancel_is_refused(net):
    payment = await watched_payment(net)
    await in_mempool(net, payment.deposit_address)
    await net.chain.mine(1)
    await wait_status(net.merchant, payment.payment_id, DETECTED)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await net.merchant.payments.CancelPayment(
            spb.CancelPaymentRequest(payment_id=payment.payment_id), metadata=net.merchant.auth
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"payment {payment.payment_id} is detected" in err.value.details()
    await net.chain.mine(DEPTH - 1)
    final = await wait_status(net.merchant, payment.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert [(t.state, t.late) for t in final.transfers] == [(pb.TRANSFER_STATE_CONFIRMED, False)]
