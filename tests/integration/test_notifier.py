"""The notifier against the real ledger, NATS, Postgres and HTTP receivers on
loopback: signed delivery, retries, dead letters and redelivery, timeouts that
do not block other merchants, the SSRF guard, test events."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC

import grpc
import pytest
import pytest_asyncio
from paymesh.notifier.v1 import notifier_service_pb2 as npb

from services.notifier.verify import WebhookVerificationError, verify
from tests.support.ledger import ADMIN_TOKEN, MerchantHandle, create_merchant, eventually, fresh_xpub
from tests.support.webhooks import (
    NotifierClient,
    WebhookReceiver,
    failing,
    hang,
    ok,
    running_notifier,
)
from tools import devstack

pytestmark = pytest.mark.asyncio(loop_scope="session")

PENDING = npb.DELIVERY_STATE_PENDING
SUCCEEDED = npb.DELIVERY_STATE_SUCCEEDED
DEAD = npb.DELIVERY_STATE_DEAD_LETTERED
SKIPPED = npb.DELIVERY_STATE_SKIPPED


async def hooked_merchant(ledger_channel, url: str = "") -> MerchantHandle:
    xpub, account = fresh_xpub()
    return await create_merchant(ledger_channel, xpub, derivation_path=f"m/44'/60'/{account}'", webhook_url=url)


async def merchant_with_stored_url(ledger, ledger_channel, url: str) -> MerchantHandle:
    """A merchant whose webhook URL is in the ledger's row although the API refuses
    it today: as after an upgrade from a version that did not check URLs, or a name
    that resolved elsewhere when it was set. The notifier's guard must still hold."""
    from sqlalchemy import text

    merchant = await hooked_merchant(ledger_channel)
    async with ledger.engine.begin() as conn:
        await conn.execute(
            text("UPDATE merchants SET webhook_url = :url WHERE id = :id"), {"url": url, "id": merchant.merchant_id}
        )
    return merchant


@pytest_asyncio.fixture(loop_scope="session")
async def notifier(postgres, nats_server, ledger) -> AsyncIterator:
    async with running_notifier(postgres, nats_server.url, ledger.port) as app:
        yield app


@pytest_asyncio.fixture(loop_scope="session")
async def notifier_channel(notifier) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{notifier.port}") as channel:
        yield channel


@pytest.fixture
def admin(notifier_channel) -> NotifierClient:
    return NotifierClient(notifier_channel, ADMIN_TOKEN)


async def test_delivers_signed_event_the_helper_verifies(notifier, notifier_channel, ledger_channel, admin):
    async with WebhookReceiver(ok()) as receiver:
        merchant = await hooked_merchant(ledger_channel, receiver.url)
        payment = await merchant.create(amount="123456789012345678901234567890")
        await receiver.wait_for(lambda: receiver.succeeded())
        request = receiver.requests[0]

    assert request.method == "POST" and request.path == "/hooks/paymesh"
    assert request.headers["content-type"] == "application/json"
    event = verify(request.body, request.headers["paymesh-signature"], merchant.webhook_secret, tolerance=60)
    assert event["id"] == request.event_id == request.headers["paymesh-event-id"]
    assert event["type"] == "payment.created" and request.headers["paymesh-event-type"] == "created"
    assert event["merchant_id"] == merchant.merchant_id
    sent = event["data"]["payment"]
    assert sent["payment_id"] == payment.payment_id
    assert sent["amount_due"] == "123456789012345678901234567890"  # a decimal string, never a float
    assert sent["amount_received"] == "0"
    assert sent["status"] == "PAYMENT_STATUS_PENDING"
    assert sent["deposit_address"] == payment.deposit_address
    assert sent["chain_id"] == "31337"  # proto JSON: 64-bit integers are strings
    assert event["created_at"].endswith("Z")

    # The helper refuses a wrong secret, an altered body and an old signature.
    with pytest.raises(WebhookVerificationError):
        verify(request.body, request.headers["paymesh-signature"], "whsec_wrong", tolerance=60)
    with pytest.raises(WebhookVerificationError):
        verify(
            request.body.replace(b"123456789", b"999999999"),
            request.headers["paymesh-signature"],
            merchant.webhook_secret,
            tolerance=60,
        )
    with pytest.raises(WebhookVerificationError):
        verify(
            request.body,
            request.headers["paymesh-signature"],
            merchant.webhook_secret,
            tolerance=60,
            now=time.time() + 3600,
        )

    # The delivery is recorded: one successful attempt, visible to the merchant and the operator.
    mine = NotifierClient(notifier_channel, merchant.api_key)
    delivery = await mine.wait_state(request.event_id, SUCCEEDED)
    assert delivery.payment_id == payment.payment_id and delivery.merchant_id == merchant.merchant_id
    assert delivery.event_type == "created" and delivery.url == receiver.url
    assert delivery.attempt_count == 1 and delivery.last_status_code == 200 and delivery.last_error == ""
    assert [(a.number, a.status_code, a.error) for a in delivery.attempts] == [(1, 200, "")]
    assert delivery.attempts[0].started_at.seconds > 0
    assert not delivery.HasField("next_attempt_at")
    assert (await admin.get(delivery.delivery_id)).delivery_id == delivery.delivery_id


async def test_failing_three_times_then_ok_is_delivered_once_with_four_attempts(ledger_channel, notifier_channel):
    async with WebhookReceiver(failing(3, status=503)) as receiver:
        merchant = await hooked_merchant(ledger_channel, receiver.url)
        await merchant.create()
        await receiver.wait_for(lambda: receiver.succeeded())
        event_id = receiver.requests[0].event_id
        # Nothing more may arrive: once recorded as succeeded the delivery is final (no
        # claim takes it again), and every request needs a claim (attempt_count below).
        delivery = await NotifierClient(notifier_channel, merchant.api_key).wait_state(event_id, SUCCEEDED)
        assert [r.status for r in receiver.requests] == [503, 503, 503, 200]
        assert {r.event_id for r in receiver.requests} == {event_id}
        assert [r.headers["paymesh-attempt"] for r in receiver.requests] == ["1", "2", "3", "4"]
        # Every attempt is signed afresh and verifies.
        for r in receiver.requests:
            verify(r.body, r.headers["paymesh-signature"], merchant.webhook_secret)
        assert len({r.body for r in receiver.requests}) == 1  # the same bytes each time

    assert delivery.attempt_count == 4
    assert [(a.number, a.status_code) for a in delivery.attempts] == [(1, 503), (2, 503), (3, 503), (4, 200)]
    assert all(a.error == "" for a in delivery.attempts)  # a response is not an error
    starts = [a.started_at.ToDatetime() for a in delivery.attempts]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert all(g >= 0.15 for g in gaps), gaps  # the 200 ms schedule was followed


async def test_receiver_down_for_good_dead_letters_and_redeliver_brings_it_back(
    ledger_channel, notifier_channel, admin
):
    port = devstack.free_port()  # nothing listens there yet
    receiver = WebhookReceiver(ok(), port=port)
    merchant = await hooked_merchant(ledger_channel, receiver.url)
    mine = NotifierClient(notifier_channel, merchant.api_key)
    await merchant.create()
    await merchant.create()

    async def dead_letters():
        reply = await mine.list(state=DEAD)
        return reply.deliveries if len(reply.deliveries) == 2 else None

    dead = await eventually(dead_letters, timeout=20)
    for d in dead:
        full = await mine.get(d.delivery_id)
        assert full.attempt_count == 4  # first try + the 3 retries of the test schedule
        assert all(a.status_code == 0 and "connection failed" in a.error for a in full.attempts)
        assert "connection failed" in full.last_error and not full.HasField("next_attempt_at")

    async with receiver:
        # One delivery again by id, then every dead letter of the merchant.
        assert await mine.redeliver(delivery_id=dead[0].delivery_id) == 1
        await receiver.wait_for(lambda: receiver.event_ids(answered_ok=True) == {dead[0].event_id})
        assert await admin.redeliver(merchant_id=merchant.merchant_id) == 1  # only the other is still dead
        await receiver.wait_for(lambda: receiver.event_ids(answered_ok=True) == {d.event_id for d in dead})
        for d in dead:
            done = await mine.wait_state(d.event_id, SUCCEEDED)
            assert done.attempt_count == 5 and done.attempts[-1].status_code == 200
        assert await mine.redeliver(merchant_id=merchant.merchant_id) == 0  # nothing dead any more

        # A succeeded delivery can be sent again on request (same event id).
        assert await mine.redeliver(delivery_id=dead[0].delivery_id) == 1
        await receiver.wait_for(lambda: len(receiver.for_event(dead[0].event_id)) == 2)
        again = await mine.wait_state(dead[0].event_id, SUCCEEDED)
        await eventually(lambda: _attempts(mine, again.delivery_id, 6))


async def _attempts(client: NotifierClient, delivery_id: str, n: int) -> bool:
    d = await client.get(delivery_id)
    return d.attempt_count == n and d.state == SUCCEEDED


async def test_hanging_receiver_times_out_and_does_not_block_another_merchant(
    postgres, nats_server, ledger, ledger_channel
):
    async with (
        running_notifier(
            postgres,
            nats_server.url,
            ledger.port,
            request_timeout_seconds=3.0,
            lease_seconds=8.0,
            per_endpoint_concurrency=2,
            retry_schedule="30s",
        ) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        async with WebhookReceiver(hang()) as stuck, WebhookReceiver(ok()) as healthy:
            slow_merchant = await hooked_merchant(ledger_channel, stuck.url)
            fast_merchant = await hooked_merchant(ledger_channel, healthy.url)
            for _ in range(6):  # three times the slow merchant's concurrency
                await slow_merchant.create()
            await stuck.wait_for(lambda: len(stuck.requests) == 2)
            await fast_merchant.create()
            await healthy.wait_for(lambda: healthy.succeeded())
            # Delivered while both of the slow merchant's attempts still hang (their
            # recorded ends are compared below).
            assert [r.status for r in stuck.requests] == [0, 0]
            delivered_at = healthy.requests[0].at
            assert len(stuck.requests) == 2  # never more than its concurrency at once

            slow = NotifierClient(channel, slow_merchant.api_key)

            async def timed_out():
                reply = await slow.list()
                failed = [d for d in reply.deliveries if d.attempt_count >= 1 and "timed out" in d.last_error]
                return failed if len(failed) >= 2 else None

            failed = await eventually(timed_out, timeout=15)
            attempt = (await slow.get(failed[0].delivery_id)).attempts[0]
            assert attempt.status_code == 0 and "timed out" in attempt.error
            # Ended by the request timeout (3 s): the error names it, and the receiver
            # had all of it (a timer never fires early, so this lower bound holds on
            # any machine; how late the attempt is recorded depends on the load).
            assert re.search(r"after (at most )?3s", attempt.error), attempt.error
            assert attempt.duration_ms >= 2900
            assert failed[0].state == PENDING and failed[0].HasField("next_attempt_at")
            # The healthy merchant was answered before either hanging attempt ended.
            for d in failed:
                hung = (await slow.get(d.delivery_id)).attempts[0]
                ended = hung.started_at.ToDatetime(tzinfo=UTC).timestamp() + hung.duration_ms / 1000
                assert delivered_at < ended, (delivered_at, ended)
            # The next two of its deliveries are being attempted now (its slots freed up;
            # the first two are not retried before 30 s).
            await stuck.wait_for(lambda: len(stuck.requests) == 4)


async def test_private_address_is_refused_unless_allowed(postgres, nats_server, ledger, ledger_channel):
    async with (
        running_notifier(
            postgres, nats_server.url, ledger.port, allow_private_webhooks=False, retry_schedule=""
        ) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        async with WebhookReceiver(ok()) as receiver:
            merchant = await hooked_merchant(ledger_channel, receiver.url)
            mine = NotifierClient(channel, merchant.api_key)
            await merchant.create()
            reply = await eventually(lambda: _dead(mine, 1), timeout=10)
            delivery = await mine.get(reply[0].delivery_id)
            assert receiver.requests == []  # nothing reached the loopback receiver
            assert delivery.attempts[0].status_code == 0
            assert "refused by the SSRF policy" in delivery.last_error and "loopback" in delivery.last_error
            assert "PAYMESH_ALLOW_PRIVATE_WEBHOOKS" in delivery.last_error

            # A cloud metadata address is refused too (whatever the setting, see below).
            metadata = await merchant_with_stored_url(
                ledger, ledger_channel, "http://169.254.169.254/latest/meta-data/"
            )
            meta_client = NotifierClient(channel, metadata.api_key)
            await metadata.create()
            found = await eventually(lambda: _dead(meta_client, 1), timeout=10)
            assert "metadata" in (await meta_client.get(found[0].delivery_id)).last_error


async def _dead(client: NotifierClient, n: int):
    reply = await client.list(state=DEAD)
    return reply.deliveries if len(reply.deliveries) >= n else None


async def test_metadata_address_is_refused_even_when_private_addresses_are_allowed(
    ledger, ledger_channel, notifier_channel
):
    merchant = await merchant_with_stored_url(ledger, ledger_channel, "http://[fd00:ec2::254]/latest/")
    mine = NotifierClient(notifier_channel, merchant.api_key)
    await merchant.create()
    found = await eventually(lambda: _dead(mine, 1), timeout=10)
    full = await mine.get(found[0].delivery_id)
    assert all("SSRF" in a.error and "metadata" in a.error for a in full.attempts)


async def test_redirect_is_not_followed_and_counts_as_a_failure(ledger_channel, notifier_channel):
    async with WebhookReceiver(failing(1, status=302)) as receiver:
        merchant = await hooked_merchant(ledger_channel, receiver.url)
        await merchant.create()
        await receiver.wait_for(lambda: receiver.succeeded())
        assert [r.status for r in receiver.requests] == [302, 200]
        assert all(r.path == "/hooks/paymesh" for r in receiver.requests)  # never went to Location
        delivery = await NotifierClient(notifier_channel, merchant.api_key).wait_state(
            receiver.requests[0].event_id, SUCCEEDED
        )
        assert [a.status_code for a in delivery.attempts] == [302, 200]


async def test_merchant_without_webhook_url_is_skipped(ledger_channel, notifier_channel):
    merchant = await hooked_merchant(ledger_channel, "")
    mine = NotifierClient(notifier_channel, merchant.api_key)
    payment = await merchant.create()

    async def skipped():
        reply = await mine.list(payment_id=payment.payment_id)
        return reply.deliveries[0] if reply.deliveries and reply.deliveries[0].state == SKIPPED else None

    delivery = await eventually(skipped)
    assert delivery.attempt_count == 0 and "no webhook URL" in delivery.last_error


async def test_send_test_event(ledger_channel, notifier_channel, admin):
    async with WebhookReceiver(ok()) as receiver:
        merchant = await hooked_merchant(ledger_channel, receiver.url)
        delivery = await NotifierClient(notifier_channel, merchant.api_key).send_test()
        assert delivery.state == SUCCEEDED and delivery.event_type == "test"
        assert [(a.number, a.status_code) for a in delivery.attempts] == [(1, 200)]
        assert len(receiver.requests) == 1
        event = verify(
            receiver.requests[0].body, receiver.requests[0].headers["paymesh-signature"], merchant.webhook_secret
        )
        assert event["type"] == "payment.test" and event["id"] == delivery.event_id
        assert event["data"]["payment"]["merchant_id"] == merchant.merchant_id

        by_operator = await admin.send_test(merchant.merchant_id)
        assert by_operator.state == SUCCEEDED and len(receiver.requests) == 2

    without_url = await hooked_merchant(ledger_channel, "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.send_test(without_url.merchant_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "no webhook URL" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.send_test("mch_doesnotexist")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.send_test("")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
