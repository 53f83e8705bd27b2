"""The ledger as a real process, killed with SIGKILL at the worst moments.

Each test gets its own NATS and database, so the shared in-process ledger
(another consumer of the same durable) cannot take its messages.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import asyncpg
import grpc
import nats
import pytest
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb

from services.common.db import plain_url
from services.ledger.inbound.chain_consumer import LEDGER_DURABLE
from tests.support.ledger import (
    ADMIN_TOKEN,
    SERVICE_TOKEN_ENV,
    create_merchant,
    eventually,
    fresh_xpub,
    publish_chain,
    publish_head,
    transfer_event,
)
from tests.support.procs import ServiceProcess
from tools import devstack

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def ledger_process(postgres, nats_factory, chains_file, stack_dir: Path):
    nats_server = nats_factory()
    db = f"crash_{secrets.token_hex(4)}"
    env = {
        "PAYMESH_DATABASE_URL": postgres.create_database(db),
        "PAYMESH_NATS_URL": nats_server.url,
        "PAYMESH_CHAINS_FILE": str(chains_file),
        "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
        **SERVICE_TOKEN_ENV,
        "PAYMESH_CONSUMER_ACK_WAIT_SECONDS": "2",
        "PAYMESH_SHUTDOWN_GRACE_SECONDS": "1",
    }
    proc = ServiceProcess("services.ledger", env, stack_dir / f"{db}.log", devstack.free_port())
    try:
        yield proc, nats_server
    finally:
        proc.kill()


async def _stream_messages(nats_url: str, subject: str) -> list:
    """Every message the PAYMENTS stream holds on `subject`, in order (read until the
    consumer has none left to deliver)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, stream="PAYMENTS")
        out = []
        while (await sub.consumer_info()).num_pending:
            msgs = await sub.fetch(100, timeout=5)
            out += msgs
            for m in msgs:
                await m.ack()
        return out
    finally:
        await nc.drain()


async def _chain_events_settled(nats_url: str) -> None:
    """Wait until the ledger has settled every chain event (applied and acked after
    its commit, redeliveries included)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()

        async def settled():
            info = await js.consumer_info("CHAIN", LEDGER_DURABLE)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await eventually(settled, timeout=30)
    finally:
        await nc.drain()


async def _outbox_relayed(database_url: str) -> None:
    """Wait until the ledger's outbox holds no unpublished event (each published and
    its mark committed)."""

    async def relayed():
        conn = await asyncpg.connect(plain_url(database_url))
        try:
            return await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
        finally:
            await conn.close()

    await eventually(relayed, timeout=30)


async def test_killed_between_commit_and_ack_loses_and_duplicates_nothing(ledger_process):
    proc, nats_server = ledger_process
    proc.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        xpub, account = fresh_xpub()
        merchant = await create_merchant(channel, xpub)
        payment = await merchant.create(amount="1000")
    proc.terminate()
    # Restart with the failpoint: the ledger commits the transfer, then dies
    # before acking the NATS message.
    proc.start(extra_env={"PAYMESH_FAILPOINTS": "ledger-chain.after_handle_before_ack"})
    nc = await nats.connect(nats_server.url)
    try:
        await publish_chain(nc.jetstream(), "transfer", transfer_event(payment.deposit_address, 1000, block=50))
        assert await asyncio.to_thread(proc.wait_exit, 30) == -9
        # Back without the failpoint: the unacked message is redelivered and
        # must be a no-op; then a head confirms the payment.
        proc.start()
        await publish_head(nc.jetstream(), 60)
    finally:
        await nc.drain()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        merchant.payments = type(merchant.payments)(channel)

        async def confirmed():
            p = await merchant.get(payment.payment_id)
            return p if p.status == pb.PAYMENT_STATUS_CONFIRMED else None

        p = await eventually(confirmed, timeout=30)
        # The transfer the killed process never acked is redelivered after the 2 s ack
        # wait; once it is acked too, every redelivery has been applied.
        await _chain_events_settled(nats_server.url)
        await _outbox_relayed(proc.env["PAYMESH_DATABASE_URL"])
        p = await merchant.get(payment.payment_id)
    assert p.amount_received == "1000" and len(p.transfers) == 1
    events = await _stream_messages(nats_server.url, f"paymesh.payments.{merchant.merchant_id}.>")
    subjects = [m.subject.rsplit(".", 1)[-1] for m in events]
    assert subjects == ["created", "detected", "confirmed"]


async def test_outbox_relay_killed_after_publish_publishes_each_event_once(ledger_process):
    proc, nats_server = ledger_process
    proc.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        xpub, _ = fresh_xpub()
        merchant = await create_merchant(channel, xpub)
    proc.terminate()
    proc.start(extra_env={"PAYMESH_FAILPOINTS": "outbox.after_publish_before_commit"})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        merchant.payments = type(merchant.payments)(channel)
        try:
            await merchant.create(amount="42", idempotency_key="crash-1")
        except grpc.aio.AioRpcError:
            pass  # the process may die before the reply is sent; the payment is committed
    assert await asyncio.to_thread(proc.wait_exit, 30) == -9
    proc.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        merchant.payments = type(merchant.payments)(channel)
        reply = await merchant.payments.CreatePayment(
            spb.CreatePaymentRequest(chain_id=31337, asset="ETH", amount="42", idempotency_key="crash-1"),
            metadata=merchant.auth,
        )
        assert not reply.created  # the first call's payment survived the crash

        async def published():
            return await _stream_messages(nats_server.url, f"paymesh.payments.{merchant.merchant_id}.>")

        # The restarted relay republishes the event whose mark the crash lost (JetStream
        # drops the copy by its Nats-Msg-Id) and commits the mark.
        await _outbox_relayed(proc.env["PAYMESH_DATABASE_URL"])
        events = await eventually(published, timeout=15)
    assert len(events) == 1
    assert events[0].headers["Nats-Msg-Id"]
