"""Chain events (from NATS) applied by the ledger: transfers, confirmations,
reorgs, duplicates, malformed messages, and the outbox's payment events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import nats
import pytest
from paymesh.events.v1 import chain_events_pb2 as cpb
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as igrpc
from sqlalchemy import text

from services.ledger.inbound.chain_consumer import LEDGER_DURABLE
from tests.support.ledger import (
    SWEEP_LEDGER_TOKEN,
    TOKEN_ADDRESS,
    bearer,
    eventually,
    next_block,
    publish_chain,
    publish_head,
    random_hash,
    transfer_event,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def status_of(merchant, payment_id):
    return (await merchant.get(payment_id)).status


async def wait_status(merchant, payment_id, status, timeout=15.0):
    async def check():
        p = await merchant.get(payment_id)
        return p if p.status == status else None

    return await eventually(check, timeout=timeout)


async def chain_events_settled(js) -> None:
    """Wait until the ledger has settled every chain event published so far (each
    applied and acked after its commit, or dead-lettered): nothing is left to change
    what a test reads next."""

    async def settled():
        info = await js.consumer_info("CHAIN", LEDGER_DURABLE)
        return info.num_pending == 0 and info.num_ack_pending == 0

    await eventually(settled)


async def test_transfer_detects_then_head_confirms(merchant, js):
    payment = await merchant.create(amount="1000")
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 1000, block=block))
    detected = await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_DETECTED)
    assert detected.amount_received == "1000" and detected.amount_confirmed == "0"
    assert detected.transfers[0].state == pb.TRANSFER_STATE_SEEN
    await publish_head(js, block + 1)  # 2 confirmations (anvil chain needs 2)
    confirmed = await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert confirmed.amount_confirmed == "1000"
    assert confirmed.transfers[0].state == pb.TRANSFER_STATE_CONFIRMED


async def test_same_transfer_twice_credits_once(merchant, js):
    payment = await merchant.create(amount="1000")
    block = next_block()
    event = transfer_event(payment.deposit_address, 600, block=block)
    # Once with a dedup id, once without (as after a listener crash beyond the
    # dedup window): the ledger's unique key still applies it once.
    await publish_chain(js, "transfer", event, msg_id=f"t-{event.tx_hash}")
    await publish_chain(js, "transfer", event)
    await publish_chain(js, "transfer", event)
    await publish_head(js, block + 5)
    p = await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_UNDERPAID)
    await chain_events_settled(js)  # all three copies applied
    p = await merchant.get(payment.payment_id)
    assert p.amount_received == "600" and len(p.transfers) == 1


async def test_partial_payments_accumulate_and_overpay(merchant, js):
    payment = await merchant.create(amount="1000")
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 400, block=block))
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 400, block=block + 1))
    await publish_head(js, block + 3)
    p = await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_UNDERPAID)
    assert p.amount_confirmed == "800"
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 300, block=block + 4))
    await publish_head(js, block + 6)
    p = await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_OVERPAID)
    assert p.amount_confirmed == "1100" and len(p.transfers) == 3


async def test_token_payment_ignores_other_assets_but_records_them(merchant, js):
    payment = await merchant.create(asset="TUSD", amount="5000000")
    block = next_block()
    # Native coin sent to a token payment: recorded, not credited.
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 10**18, block=block))
    await publish_chain(
        js,
        "transfer",
        transfer_event(payment.deposit_address, 5_000_000, block=block, log_index=3, token=TOKEN_ADDRESS),
    )
    await publish_head(js, block + 2)
    p = await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert p.amount_confirmed == "5000000"
    assert sorted(t.credited for t in p.transfers) == [False, True]


async def test_reorg_reverts_a_detected_payment_and_credits_the_canonical_one(merchant, js):
    payment = await merchant.create(amount="1000")
    block = next_block()
    orphan_hash = random_hash()
    tx = random_hash()
    await publish_chain(
        js, "transfer", transfer_event(payment.deposit_address, 1000, block=block, block_hash=orphan_hash, tx_hash=tx)
    )
    await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_DETECTED)
    await publish_chain(
        js,
        "reorg",
        cpb.ReorgObserved(
            chain_id=31337,
            common_ancestor_number=block - 1,
            common_ancestor_hash=random_hash(),
            orphaned_block_hashes=[orphan_hash],
            new_head_number=block,
            new_head_hash=random_hash(),
        ),
    )
    p = await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_PENDING)
    assert p.amount_received == "0"
    assert p.transfers[0].state == pb.TRANSFER_STATE_ORPHANED
    # A late replay of the orphaned transfer changes nothing.
    await publish_chain(
        js, "transfer", transfer_event(payment.deposit_address, 1000, block=block, block_hash=orphan_hash, tx_hash=tx)
    )
    # The same tx mined in the canonical block counts.
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 1000, block=block + 1, tx_hash=tx))
    await publish_head(js, block + 2)
    p = await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert [t.state for t in p.transfers] == [pb.TRANSFER_STATE_ORPHANED, pb.TRANSFER_STATE_CONFIRMED]


async def test_payment_after_expiry_is_recorded_not_dropped(merchant, js):
    payment = await merchant.create(amount="1000")
    block = next_block()
    late = datetime.now(UTC) + timedelta(hours=2)  # mined after the 1 h default expiry
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 1000, block=block, block_time=late))
    await publish_head(js, block + 2)
    p = await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_PAID_AFTER_EXPIRY)
    assert p.amount_confirmed == "1000" and p.transfers[0].late


async def test_malformed_chain_event_is_dead_lettered_and_does_not_block(merchant, js):
    payment = await merchant.create(amount="1000")
    await js.publish("paymesh.chain.31337.transfer", b"\xff\xfe not protobuf", stream="CHAIN")
    await publish_chain(js, "transfer", cpb.TransferObserved(chain_id=31337, block_hash="0x12", tx_hash="nope"))
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 1000, block=block))
    await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_DETECTED)

    async def dead_lettered():
        info = await js.stream_info("DLQ")
        return info.state.messages >= 2

    await eventually(dead_lettered)


async def test_payment_events_reach_nats_once_each_in_order(merchant, js, nats_server, ledger):
    nc = await nats.connect(nats_server.url)
    received: list[evpb.PaymentEvent] = []

    async def on_msg(msg):
        received.append(evpb.PaymentEvent.FromString(msg.data))

    sub = await nc.subscribe(f"paymesh.payments.{merchant.merchant_id}.>", cb=on_msg)
    try:
        payment = await merchant.create(amount="1000")
        block = next_block()
        await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 1000, block=block))
        await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_DETECTED)
        await publish_head(js, block + 1)
        await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
        await eventually(lambda: asyncio.sleep(0, result=len(received) >= 3))

        async def relayed():  # every event of this merchant published (and marked so)
            async with ledger.engine.connect() as conn:
                left = await conn.execute(
                    text("SELECT count(*) FROM outbox WHERE merchant_id = :m AND published_at IS NULL"),
                    {"m": merchant.merchant_id},
                )
                return left.scalar_one() == 0

        await eventually(relayed)
        # What the server sent this connection before the flush's PONG has been read,
        # and then handed to on_msg: a duplicate publish would be in `received` now.
        await nc.flush()
        await eventually(lambda: asyncio.sleep(0, result=sub.pending_msgs == 0))
    finally:
        await sub.unsubscribe()
        await nc.drain()
    types = [evpb.PaymentEventType.Name(e.type) for e in received]
    assert types == ["PAYMENT_EVENT_TYPE_CREATED", "PAYMENT_EVENT_TYPE_DETECTED", "PAYMENT_EVENT_TYPE_CONFIRMED"]
    assert len({e.event_id for e in received}) == 3
    assert [e.payment.version for e in received] == sorted(e.payment.version for e in received)
    assert received[-1].payment.status == pb.PAYMENT_STATUS_CONFIRMED
    assert received[-1].previous_status == pb.PAYMENT_STATUS_DETECTED


async def test_watch_payment_streams_changes_until_final(merchant, js):
    payment = await merchant.create(amount="1000")
    stream = merchant.payments.WatchPayment(
        spb.WatchPaymentRequest(payment_id=payment.payment_id), metadata=merchant.auth
    )
    seen = []

    async def read():
        async for reply in stream:
            seen.append(reply.payment.status)
            if reply.payment.status == pb.PAYMENT_STATUS_CONFIRMED:
                return

    reader = asyncio.create_task(read())
    await eventually(lambda: asyncio.sleep(0, result=len(seen) >= 1))
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 1000, block=block))
    await publish_head(js, block + 1)
    await asyncio.wait_for(reader, timeout=15)
    stream.cancel()
    assert seen[0] == pb.PAYMENT_STATUS_PENDING
    assert seen[-1] == pb.PAYMENT_STATUS_CONFIRMED
    # Cancelled payments end the stream by themselves.
    other = await merchant.create(amount="1")
    await merchant.payments.CancelPayment(spb.CancelPaymentRequest(payment_id=other.payment_id), metadata=merchant.auth)
    replies = [
        r
        async for r in merchant.payments.WatchPayment(
            spb.WatchPaymentRequest(payment_id=other.payment_id), metadata=merchant.auth
        )
    ]
    assert [r.payment.status for r in replies] == [pb.PAYMENT_STATUS_CANCELLED]


async def test_head_events_confirm_at_the_depth_each_payment_was_created_with(merchant, js, ledger):
    """A payment keeps its confirmations_required when chains.yaml changes later:
    here one was created when the chain needed 4 (set in its row), the other 2 (now)."""
    from sqlalchemy import text

    deep = await merchant.create(amount="1000")
    shallow = await merchant.create(amount="1000")
    async with ledger.engine.begin() as conn:
        for table, key in (("payments", "id"), ("payment_options", "payment_id"), ("deposit_addresses", "payment_id")):
            await conn.execute(
                text(f"UPDATE {table} SET confirmations_required = 4 WHERE {key} = :id"), {"id": deep.payment_id}
            )
    block = next_block()
    for p in (deep, shallow):
        await publish_chain(js, "transfer", transfer_event(p.deposit_address, 1000, block=block))
    await wait_status(merchant, deep.payment_id, pb.PAYMENT_STATUS_DETECTED)
    await publish_head(js, block + 1)  # 2 confirmations
    await wait_status(merchant, shallow.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert await status_of(merchant, deep.payment_id) == pb.PAYMENT_STATUS_DETECTED  # same commit as shallow's
    await publish_head(js, block + 2)  # 3
    await publish_head(js, block + 3)  # 4
    confirmed = await wait_status(merchant, deep.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert confirmed.confirmations_required == 4


GAS_WALLET = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil account 0, the sweeper's default gas wallet


async def test_gas_topups_are_labelled_in_either_order(merchant, js, ledger_channel):
    """The sweeper's gas top-up (native coin from its gas wallet to a token payment's
    deposit address) is a transfer in ETH of its own kind, never read as TUSD. The
    ledger knows it by tx hash: recorded before broadcast (write-ahead), it is known
    when the listener reports it; reported first (a restored database, a top-up
    recorded late), it is relabelled when recorded."""
    payment = await merchant.create(asset="TUSD", amount="25000000")
    deposit = payment.deposit_address
    block = next_block()
    await publish_chain(
        js, "transfer", transfer_event(deposit, 25_000_000, block=block, token=TOKEN_ADDRESS, log_index=0)
    )
    await publish_head(js, block + 1)
    await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    internal = igrpc.SweepLedgerServiceStub(ledger_channel)
    auth = bearer(SWEEP_LEDGER_TOKEN)
    worker = "test-topup-labels"
    jobs = (
        await internal.ClaimSweeps(
            ipb.ClaimSweepsRequest(chain_id=31337, limit=500, worker_id=worker, lease_seconds=600), metadata=auth
        )
    ).jobs
    assert payment.payment_id in {j.payment_id for j in jobs}
    for job in jobs:  # other tests' payments: give them back at once
        if job.payment_id != payment.payment_id:
            await internal.ReleaseSweep(
                ipb.ReleaseSweepRequest(
                    payment_id=job.payment_id, worker_id=worker, error="test", retry_after_seconds=1
                ),
                metadata=auth,
            )

    async def record_topup(tx_hash: str, nonce: int) -> None:
        await internal.RecordSweepTransaction(
            ipb.RecordSweepTransactionRequest(
                worker_id=worker,
                transaction=ipb.SweepTransaction(
                    payment_id=payment.payment_id,
                    chain_id=31337,
                    kind=ipb.SWEEP_TRANSACTION_KIND_GAS_TOPUP,
                    state=ipb.SWEEP_TRANSACTION_STATE_SIGNED,
                    tx_hash=tx_hash,
                    raw_tx=b"\x02signed",
                    nonce=nonce,
                    from_address=GAS_WALLET,
                    to_address=deposit,
                    amount="113000000000000",
                    gas_limit=21_000,
                    max_fee_per_gas="1000000000",
                    max_priority_fee_per_gas="1000000000",
                ),
            ),
            metadata=auth,
        )

    async def transfers(count: int) -> list[pb.Transfer]:
        async def check():
            found = (await merchant.get(payment.payment_id)).transfers
            return found if len(found) == count else None

        return list(await eventually(check))

    def topup_event(tx_hash: str, at: int) -> cpb.TransferObserved:
        event = transfer_event(deposit, 113_000_000_000_000, block=at, tx_hash=tx_hash)  # native: log_index -1
        event.from_address = GAS_WALLET
        return event

    # Reported before it was recorded: a payment-kind ETH transfer until the record says otherwise.
    early = random_hash()
    await publish_chain(js, "transfer", topup_event(early, block + 2))
    _, seen = await transfers(2)
    assert (seen.asset, seen.token_address, seen.kind, seen.credited) == ("ETH", "", pb.TRANSFER_KIND_PAYMENT, False)
    await record_topup(early, 0)
    _, relabelled = await transfers(2)
    assert relabelled.tx_hash == early and relabelled.kind == pb.TRANSFER_KIND_GAS_TOPUP

    # Recorded first, as the sweeper does: labelled as it arrives.
    later = random_hash()
    await record_topup(later, 1)
    await publish_chain(js, "transfer", topup_event(later, block + 3))
    paid, first, second = await transfers(3)
    assert (paid.asset, paid.token_address, paid.kind, paid.credited) == (
        "TUSD",
        TOKEN_ADDRESS,
        pb.TRANSFER_KIND_PAYMENT,
        True,
    )
    for topup in (first, second):
        assert (topup.asset, topup.token_address, topup.kind, topup.credited) == (
            "ETH",
            "",
            pb.TRANSFER_KIND_GAS_TOPUP,
            False,
        )
        assert topup.from_address == GAS_WALLET
    p = await merchant.get(payment.payment_id)
    assert p.status == pb.PAYMENT_STATUS_CONFIRMED and p.amount_confirmed == "25000000"  # top-ups count for nothing

    for tx_hash in (early, later):  # nothing will ever mine these: out of any sweeper's way
        await internal.UpdateSweepTransaction(
            ipb.UpdateSweepTransactionRequest(tx_hash=tx_hash, state=ipb.SWEEP_TRANSACTION_STATE_FAILED, error="test"),
            metadata=auth,
        )
    await internal.ReleaseSweep(
        ipb.ReleaseSweepRequest(payment_id=payment.payment_id, worker_id=worker, error="test", retry_after_seconds=1),
        metadata=auth,
    )
