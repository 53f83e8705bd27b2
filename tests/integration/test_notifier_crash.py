"""The notifier as a real process (`python -m services.notifier`), killed with
SIGKILL at the worst moments and stopped with SIGTERM: no pending delivery is
ever lost; a delivery cut short is sent again with the same event id.

The process uses the session ledger (in this test process) for webhook targets
and API keys, the session NATS, and a fresh database of its own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest
from paymesh.notifier.v1 import notifier_service_pb2 as npb

from tests.support.ledger import ADMIN_TOKEN, SERVICE_TOKEN_ENV, create_merchant, eventually, fresh_xpub
from tests.support.procs import ServiceProcess
from tests.support.webhooks import NotifierClient, WebhookReceiver, ok, slow
from tools import devstack

pytestmark = pytest.mark.asyncio(loop_scope="session")

SUCCEEDED = npb.DELIVERY_STATE_SUCCEEDED


@pytest.fixture
def notifier_process(postgres, nats_server, ledger, stack_dir: Path) -> Iterator[ServiceProcess]:
    db = f"notifier_crash_{secrets.token_hex(4)}"
    env = {
        "PAYMESH_NOTIFIER_DATABASE_URL": postgres.create_database(db),
        "PAYMESH_NATS_URL": nats_server.url,
        "PAYMESH_LEDGER_ADDR": f"127.0.0.1:{ledger.port}",
        "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
        **SERVICE_TOKEN_ENV,
        "PAYMESH_NOTIFIER_DURABLE": f"notifier-crash-{secrets.token_hex(4)}",
        "PAYMESH_NOTIFIER_DELIVER_POLICY": "new",
        "PAYMESH_CONSUMER_ACK_WAIT_SECONDS": "2",
        "PAYMESH_RETRY_SCHEDULE": "200ms,200ms,200ms,200ms,200ms",
        "PAYMESH_RETRY_JITTER": "0",
        "PAYMESH_REQUEST_TIMEOUT_SECONDS": "2",
        "PAYMESH_LEASE_SECONDS": "4",
        "PAYMESH_PER_MERCHANT_CONCURRENCY": "4",
        "PAYMESH_POLL_INTERVAL_SECONDS": "0.05",
        "PAYMESH_TARGET_CACHE_SECONDS": "0.5",
        "PAYMESH_ALLOW_PRIVATE_WEBHOOKS": "true",
        "PAYMESH_SHUTDOWN_GRACE_SECONDS": "3",
    }
    proc = ServiceProcess("services.notifier", env, stack_dir / f"{db}.log", devstack.free_port())
    try:
        yield proc
    finally:
        proc.kill()


async def hooked_merchant(ledger_channel, url: str):
    xpub, account = fresh_xpub()
    return await create_merchant(ledger_channel, xpub, derivation_path=f"m/44'/60'/{account}'", webhook_url=url)


async def start(proc: ServiceProcess, **extra_env: str) -> None:
    await asyncio.to_thread(proc.start, extra_env or None)


async def all_succeeded(proc: ServiceProcess, api_key: str, count: int, within: float = 30.0) -> list[npb.Delivery]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        client = NotifierClient(channel, api_key)

        async def check():
            reply = await client.list(state=SUCCEEDED, page_size=500)
            return reply.deliveries if len(reply.deliveries) == count else None

        found = await eventually(check, timeout=within)
        return [await client.get(d.delivery_id) for d in found]


async def everything_delivered_is_acked(nats_url: str, durable: str) -> bool:
    """Every PAYMENTS message delivered to `durable` so far has been acked."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info("PAYMENTS", durable)
    finally:
        await nc.close()
    return bool(info.delivered.stream_seq) and info.ack_floor.stream_seq >= info.delivered.stream_seq


async def test_sigkill_mid_delivery_loses_nothing(notifier_process, ledger_channel):
    proc = notifier_process
    await start(proc)
    async with WebhookReceiver(slow(0.3)) as receiver:
        merchant = await hooked_merchant(ledger_channel, receiver.url)
        payments = [await merchant.create(amount=str(1000 + i)) for i in range(20)]
        await receiver.wait_for(lambda: len(receiver.requests) >= 6)
        in_flight = {r.event_id for r in receiver.requests if r.status == 0}
        proc.kill()  # SIGKILL while attempts are in flight (returns once the process is gone)
        assert in_flight, "the kill should land while the receiver is answering"
        # The receiver finishes answering what the dead process sent (into closed
        # connections) before the notifier comes back.
        await receiver.wait_for(lambda: all(r.status for r in receiver.requests))

        await start(proc)
        await receiver.wait_for(
            lambda: (
                {r.json()["data"]["payment"]["payment_id"] for r in receiver.succeeded()}
                == {p.payment_id for p in payments}
            ),
            within=40,
        )
        deliveries = await all_succeeded(proc, merchant.api_key, 20)

    # One event per payment, always under the same event id; every event answered 2xx.
    by_payment: dict[str, set[str]] = {}
    for r in receiver.requests:
        by_payment.setdefault(r.json()["data"]["payment"]["payment_id"], set()).add(r.event_id)
    assert all(len(ids) == 1 for ids in by_payment.values())
    assert {d.event_id for d in deliveries} == receiver.event_ids(answered_ok=True)
    # The attempts cut short by the kill are on record as interrupted, then retried.
    for d in deliveries:
        if d.event_id in in_flight:
            assert any(a.error.startswith("interrupted") for a in d.attempts), d
            assert d.attempts[-1].status_code == 200


async def test_killed_after_send_before_record_resends_same_event(notifier_process, ledger_channel):
    proc = notifier_process
    await start(proc, PAYMESH_FAILPOINTS="notifier.after_send_before_record")
    async with WebhookReceiver(ok()) as receiver:
        merchant = await hooked_merchant(ledger_channel, receiver.url)
        await merchant.create()
        assert await asyncio.to_thread(proc.wait_exit, 20) == -signal.SIGKILL
        assert [r.status for r in receiver.requests] == [200]  # the merchant got it, we did not record it

        await start(proc)
        await receiver.wait_for(lambda: len(receiver.requests) == 2, within=20)
        (delivery,) = await all_succeeded(proc, merchant.api_key, 1)
    first, second = receiver.requests
    assert first.event_id == second.event_id == delivery.event_id and first.body == second.body
    assert [a.number for a in delivery.attempts] == [1, 2]
    assert delivery.attempts[0].error.startswith("interrupted") and delivery.attempts[1].status_code == 200


async def test_killed_after_intake_commit_before_ack_takes_the_event_in_once(
    notifier_process, ledger_channel, nats_server
):
    proc = notifier_process
    durable = proc.env["PAYMESH_NOTIFIER_DURABLE"]
    # A long fetch wait: nats-py can return an empty batch when a short pull
    # expires, and the shared consumer loop passes the failpoint even then.
    proc.env["PAYMESH_CONSUMER_FETCH_WAIT_SECONDS"] = "5"
    await start(proc, PAYMESH_FAILPOINTS=f"{durable}.after_handle_before_ack")
    async with WebhookReceiver(ok()) as receiver:
        merchant = await hooked_merchant(ledger_channel, receiver.url)
        await merchant.create()
        assert await asyncio.to_thread(proc.wait_exit, 20) == -signal.SIGKILL

        await start(proc)  # the unacked event comes back after ack_wait (2 s): a duplicate
        (delivery,) = await all_succeeded(proc, merchant.api_key, 1)
        # The redelivered message must not add a delivery: wait until it has been handled.
        # The killed process acked nothing, so an ack floor at the last message delivered
        # means the restarted one took the redelivery in and committed (then acked) it.
        await eventually(lambda: everything_delivered_is_acked(nats_server.url, durable), timeout=20)
        await all_succeeded(proc, merchant.api_key, 1)
        assert delivery.attempt_count == 1
        assert receiver.event_ids() == {delivery.event_id}


async def test_sigterm_drains_attempts_in_flight(notifier_process, ledger_channel):
    proc = notifier_process
    await start(proc)
    async with WebhookReceiver(slow(1.0)) as receiver:
        merchant = await hooked_merchant(ledger_channel, receiver.url)
        for _ in range(3):
            await merchant.create()
        await receiver.wait_for(lambda: len(receiver.requests) == 3)
        os.kill(proc.proc.pid, signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait_exit, 20) == 0
        assert [r.status for r in receiver.requests] == [200, 200, 200]

        await start(proc)
        deliveries = await all_succeeded(proc, merchant.api_key, 3, within=10)
        # Finished during the drain and recorded: nothing interrupted, nothing sent twice.
        # Succeeded is final (no claim takes it again) and one attempt each means none
        # was claimed again, so the receiver has had every request it will get.
        assert all(d.attempt_count == 1 and d.attempts[0].status_code == 200 for d in deliveries)
        assert len(receiver.requests) == 3
