"""Webhook endpoints on the real ledger, notifier, NATS, Postgres and HTTP receivers on
loopback: the API over gRPC and HTTP/JSON (one table of cases, two transports), each
endpoint getting exactly the event types it asked for, a secret roll that loses no
delivery, a dead endpoint that backs off and dead-letters on its own while the other
keeps receiving, redelivery per endpoint, and an audit entry for every change.
Every wait is bounded; nothing asserts a duration."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from paymesh.ledger.v1 import api_key_service_pb2 as kpb
from paymesh.ledger.v1 import api_key_service_pb2_grpc as kgrpc
from paymesh.ledger.v1 import audit_service_pb2 as aupb
from paymesh.ledger.v1 import audit_service_pb2_grpc as augrpc
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import webhook_endpoint_service_pb2 as wepb
from paymesh.ledger.v1 import webhook_endpoint_service_pb2_grpc as wegrpc
from paymesh.notifier.v1 import notifier_service_pb2 as npb

from services.notifier.verify import WebhookVerificationError, verify
from tests.support.connect import over_grpc, over_http
from tests.support.ledger import ADMIN_TOKEN, bearer, create_merchant, eventually, fresh_xpub
from tests.support.webhooks import NotifierClient, Received, WebhookReceiver, hang, ok, running_notifier

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVICE = "/paymesh.ledger.v1.WebhookEndpointService/"


@pytest_asyncio.fixture(loop_scope="session")
async def notifier(postgres, nats_server, ledger) -> AsyncIterator:
    async with running_notifier(postgres, nats_server.url, ledger.port, per_endpoint_concurrency=2) as app:
        yield app


@pytest_asyncio.fixture(loop_scope="session")
async def notifier_channel(notifier) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{notifier.port}") as channel:
        yield channel


async def bare_merchant(ledger_channel):
    """A merchant without the operator's webhook: only the endpoints it adds get events."""
    xpub, account = fresh_xpub()
    return await create_merchant(ledger_channel, xpub, derivation_path=f"m/44'/60'/{account}'")


async def add_endpoint(ledger_channel, merchant, url: str, *types: str, **fields) -> tuple[wepb.WebhookEndpoint, str]:
    reply = await wegrpc.WebhookEndpointServiceStub(ledger_channel).CreateWebhookEndpoint(
        wepb.CreateWebhookEndpointRequest(url=url, event_types=list(types), **fields), metadata=merchant.auth
    )
    return reply.endpoint, reply.secret


async def reader_key(ledger_channel, merchant) -> tuple[tuple[str, str], ...]:
    reply = await kgrpc.ApiKeyServiceStub(ledger_channel).CreateApiKey(
        kpb.CreateApiKeyRequest(name="reader", scopes=[kpb.API_KEY_SCOPE_PAYMENTS_READ]), metadata=merchant.auth
    )
    return bearer(reply.secret)


async def test_the_endpoint_api_over_both_transports_with_clear_errors_and_nothing_stored_on_bad_input(
    ledger, ledger_channel
):
    merchant, other = await bare_merchant(ledger_channel), await bare_merchant(ledger_channel)
    reader = await reader_key(ledger_channel, merchant)
    theirs, _ = await add_endpoint(ledger_channel, other, "http://127.0.0.1:9/theirs")
    auth = merchant.auth
    hook = "http://127.0.0.1:9/hook"
    unknown = {"endpointId": "we_" + "0" * 32}
    cases = [
        ("CreateWebhookEndpoint", {"url": hook, "eventTypes": ["payment.*", "refund.confirmed"]}, auth, "ok"),
        ("CreateWebhookEndpoint", {"url": ""}, auth, "invalid_argument"),
        ("CreateWebhookEndpoint", {"url": "ftp://127.0.0.1/x"}, auth, "invalid_argument"),
        ("CreateWebhookEndpoint", {"url": "http://169.254.169.254/latest"}, auth, "invalid_argument"),
        ("CreateWebhookEndpoint", {"url": hook, "eventTypes": ["payment.paid"]}, auth, "invalid_argument"),
        ("CreateWebhookEndpoint", {"url": hook, "description": "x" * 201}, auth, "invalid_argument"),
        ("CreateWebhookEndpoint", {"url": hook, "merchantId": other.merchant_id}, auth, "not_found"),
        ("CreateWebhookEndpoint", {"url": hook}, reader, "permission_denied"),
        ("GetWebhookEndpoint", unknown, auth, "not_found"),
        ("GetWebhookEndpoint", {"endpointId": theirs.endpoint_id}, auth, "not_found"),
        ("GetWebhookEndpoint", {}, auth, "invalid_argument"),
        ("ListWebhookEndpoints", {}, auth, "ok"),
        ("ListWebhookEndpoints", {}, reader, "permission_denied"),
        ("UpdateWebhookEndpoint", {"endpointId": theirs.endpoint_id, "enabled": False}, auth, "not_found"),
        ("UpdateWebhookEndpoint", {"endpointId": "primary", "enabled": False}, auth, "failed_precondition"),
        ("DeleteWebhookEndpoint", {"endpointId": theirs.endpoint_id}, auth, "not_found"),
        ("DeleteWebhookEndpoint", {"endpointId": "primary"}, auth, "failed_precondition"),
        ("RollWebhookEndpointSecret", {"endpointId": theirs.endpoint_id}, auth, "not_found"),
        (
            "RollWebhookEndpointSecret",
            {"endpointId": theirs.endpoint_id, "overlapSeconds": 604801},
            auth,
            "invalid_argument",
        ),
    ]
    for method, body, who, expected in cases:
        via_grpc = await over_grpc(ledger_channel, SERVICE + method, body, who)
        via_http = await over_http(ledger, SERVICE + method, body, who)
        assert via_grpc[0] == expected, (method, body, via_grpc)
        assert via_http[:3] == via_grpc[:3], (method, via_http, via_grpc)  # code, message, reason
        if expected == "permission_denied":
            assert "webhooks:manage" in via_grpc[1]
        if expected == "invalid_argument" and body.get("url", "") == hook:
            assert "event_types[0]" in via_grpc[1] or "description" in via_grpc[1]
    # The two successful creations (one per transport) and nothing else; the other
    # merchant's endpoint untouched.
    stub = wegrpc.WebhookEndpointServiceStub(ledger_channel)
    mine = (await stub.ListWebhookEndpoints(wepb.ListWebhookEndpointsRequest(), metadata=auth)).endpoints
    assert [list(e.event_types) for e in mine] == [["payment.*", "refund.confirmed"]] * 2
    still = (
        await stub.GetWebhookEndpoint(
            wepb.GetWebhookEndpointRequest(endpoint_id=theirs.endpoint_id), metadata=other.auth
        )
    ).endpoint
    assert still == theirs

    # The rest of the life of an endpoint, with an audit entry for each change.
    endpoint = mine[0]
    changed = (
        await stub.UpdateWebhookEndpoint(
            wepb.UpdateWebhookEndpointRequest(
                endpoint_id=endpoint.endpoint_id,
                description="orders",
                event_types=wepb.EventTypeFilter(event_types=["*"]),
            ),
            metadata=auth,
        )
    ).endpoint
    assert changed.description == "orders" and list(changed.event_types) == [] and changed.enabled
    with pytest.raises(grpc.aio.AioRpcError) as nothing:
        await stub.UpdateWebhookEndpoint(
            wepb.UpdateWebhookEndpointRequest(endpoint_id=endpoint.endpoint_id), metadata=auth
        )
    assert nothing.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "nothing to change" in nothing.value.details()
    rolled = await stub.RollWebhookEndpointSecret(
        wepb.RollWebhookEndpointSecretRequest(endpoint_id=endpoint.endpoint_id, overlap_seconds=60), metadata=auth
    )
    assert rolled.secret.startswith("whsec_") and rolled.endpoint.HasField("previous_secret_expires_at")
    await stub.DeleteWebhookEndpoint(wepb.DeleteWebhookEndpointRequest(endpoint_id=endpoint.endpoint_id), metadata=auth)
    operator_view = await stub.ListWebhookEndpoints(
        wepb.ListWebhookEndpointsRequest(merchant_id=merchant.merchant_id), metadata=bearer(ADMIN_TOKEN)
    )
    assert [e.endpoint_id for e in operator_view.endpoints] == [mine[1].endpoint_id]
    entries = (
        await augrpc.AuditServiceStub(ledger_channel).ListAuditEntries(
            aupb.ListAuditEntriesRequest(page_size=50), metadata=auth
        )
    ).entries
    about = [(e.action, e.target) for e in entries if e.target == endpoint.endpoint_id]
    assert [a for a, _ in reversed(about)] == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.secret_rolled",
        "webhook_endpoint.deleted",
    ]
    assert all(rolled.secret not in str(e) for e in entries)  # never a secret in the log


async def test_two_endpoints_with_different_filters_each_get_exactly_their_events(
    notifier, notifier_channel, ledger_channel
):
    async with WebhookReceiver(ok()) as created_only, WebhookReceiver(ok()) as cancelled_only:
        async with WebhookReceiver(ok()) as switched_off:
            merchant = await bare_merchant(ledger_channel)
            first, first_secret = await add_endpoint(ledger_channel, merchant, created_only.url, "payment.created")
            second, second_secret = await add_endpoint(
                ledger_channel, merchant, cancelled_only.url, "payment.cancelled", "refund.*"
            )
            await add_endpoint(ledger_channel, merchant, switched_off.url, disabled=True)
            payment = await merchant.create()
            await merchant.payments.CancelPayment(
                spb.CancelPaymentRequest(payment_id=payment.payment_id), metadata=merchant.auth
            )
            await created_only.wait_for(lambda: created_only.succeeded())
            await cancelled_only.wait_for(lambda: cancelled_only.succeeded())
            client = NotifierClient(notifier_channel, merchant.api_key)

            async def both_recorded():
                reply = await client.list(payment_id=payment.payment_id)
                done = [d for d in reply.deliveries if d.state == npb.DELIVERY_STATE_SUCCEEDED]
                return reply.deliveries if len(done) == 2 else None

            deliveries = await eventually(both_recorded)
            assert not switched_off.requests
        assert [r.json()["type"] for r in created_only.requests] == ["payment.created"]
        assert [r.json()["type"] for r in cancelled_only.requests] == ["payment.cancelled"]
        verify(created_only.requests[0].body, created_only.requests[0].headers["paymesh-signature"], first_secret)
        verify(cancelled_only.requests[0].body, cancelled_only.requests[0].headers["paymesh-signature"], second_secret)
        with pytest.raises(WebhookVerificationError):  # each endpoint has its own secret
            verify(created_only.requests[0].body, created_only.requests[0].headers["paymesh-signature"], second_secret)
        assert {(d.endpoint_id, d.event_type) for d in deliveries} == {
            (first.endpoint_id, "created"),
            (second.endpoint_id, "cancelled"),
        }
        per_endpoint = await client.list(endpoint_id=first.endpoint_id)
        assert [d.event_type for d in per_endpoint.deliveries] == ["created"]

        # A test event goes to the endpoint named, whatever its filter.
        test = await client.stub.SendTestEvent(
            npb.SendTestEventRequest(endpoint_id=second.endpoint_id), metadata=client.metadata
        )
        assert test.delivery.state == npb.DELIVERY_STATE_SUCCEEDED and test.delivery.endpoint_id == second.endpoint_id
        assert cancelled_only.requests[-1].json()["type"] == "payment.test"


async def test_a_secret_roll_with_overlap_loses_no_delivery(notifier, ledger_channel):
    """The receiver verifies with the one secret it knows; it deploys the new one some
    time after the roll. Every delivery is accepted the first time."""
    known = {"secret": ""}

    async def verifying(request: Received) -> int:
        try:
            verify(request.body, request.headers["paymesh-signature"], known["secret"])
        except WebhookVerificationError:
            return 400
        return 200

    async with WebhookReceiver(verifying) as receiver:
        merchant = await bare_merchant(ledger_channel)
        endpoint, known["secret"] = await add_endpoint(ledger_channel, merchant, receiver.url, "payment.created")
        stub = wegrpc.WebhookEndpointServiceStub(ledger_channel)

        async def pay_and_wait(count: int) -> Received:
            await merchant.create()
            await receiver.wait_for(lambda: len(receiver.succeeded()) == count)
            return receiver.succeeded()[-1]

        assert (await pay_and_wait(1)).headers["paymesh-signature"].count("v1=") == 1
        rolled = await stub.RollWebhookEndpointSecret(
            wepb.RollWebhookEndpointSecretRequest(endpoint_id=endpoint.endpoint_id, overlap_seconds=3600),
            metadata=merchant.auth,
        )

        async def signed_twice():
            request = await pay_and_wait(len(receiver.succeeded()) + 1)
            return request if request.headers["paymesh-signature"].count("v1=") == 2 else None

        await eventually(signed_twice)  # within the notifier's cache time of the roll; old secret still accepted
        known["secret"] = rolled.secret  # the merchant deploys the new secret
        await pay_and_wait(len(receiver.succeeded()) + 1)
        # A roll with a short overlap: once it ends, only the newest secret signs.
        again = await stub.RollWebhookEndpointSecret(
            wepb.RollWebhookEndpointSecretRequest(endpoint_id=endpoint.endpoint_id, overlap_seconds=1),
            metadata=merchant.auth,
        )

        async def signed_with_the_newest_too():
            request = await pay_and_wait(len(receiver.succeeded()) + 1)
            try:
                verify(request.body, request.headers["paymesh-signature"], again.secret)
            except WebhookVerificationError:
                return None
            return request

        await eventually(signed_with_the_newest_too)  # the notifier has the roll: deploy the new secret
        known["secret"] = again.secret

        async def signed_once_with_the_newest():
            request = await pay_and_wait(len(receiver.succeeded()) + 1)
            return request if request.headers["paymesh-signature"].count("v1=") == 1 else None

        await eventually(signed_once_with_the_newest, timeout=20)
        assert all(r.status == 200 for r in receiver.requests), [r.status for r in receiver.requests]


async def test_a_dead_endpoint_backs_off_and_dead_letters_without_delaying_the_other(
    notifier, notifier_channel, ledger_channel
):
    async with WebhookReceiver(hang()) as dead, WebhookReceiver(ok()) as alive:
        merchant = await bare_merchant(ledger_channel)
        broken, _ = await add_endpoint(ledger_channel, merchant, dead.url, "payment.created")
        working, _ = await add_endpoint(ledger_channel, merchant, alive.url, "payment.created")
        payments = [await merchant.create() for _ in range(6)]
        client = NotifierClient(notifier_channel, ADMIN_TOKEN)
        # Every event reaches the working endpoint while the dead one holds its two
        # connections (per_endpoint_concurrency=2) on requests that never answer.
        await alive.wait_for(lambda: len(alive.succeeded()) == 6, within=30)
        assert not dead.succeeded()

        async def all_dead_lettered():
            reply = await client.list(endpoint_id=broken.endpoint_id, merchant_id=merchant.merchant_id)
            states = [d.state for d in reply.deliveries]
            return reply.deliveries if states.count(npb.DELIVERY_STATE_DEAD_LETTERED) == 6 else None

        dead_letters = await eventually(all_dead_lettered, timeout=90)
        assert {d.payment_id for d in dead_letters} == {p.payment_id for p in payments}
        assert all(d.attempt_count == 4 for d in dead_letters)  # one try + the schedule's three retries
        working_side = await client.list(endpoint_id=working.endpoint_id, merchant_id=merchant.merchant_id)
        assert [d.state for d in working_side.deliveries] == [npb.DELIVERY_STATE_SUCCEEDED] * 6
        assert all(d.attempt_count == 1 for d in working_side.deliveries)

        # The receiver is fixed: its own dead letters are redelivered, the other endpoint's untouched.
        dead.behaviour = ok()
        merchant_client = NotifierClient(notifier_channel, merchant.api_key)
        assert await merchant_client.redeliver(endpoint_id=broken.endpoint_id) == 6
        await dead.wait_for(lambda: len(dead.event_ids(answered_ok=True)) == 6, within=30)
        assert len(alive.requests) == 6
        with pytest.raises(grpc.aio.AioRpcError) as ambiguous:
            await client.redeliver(endpoint_id="primary")
        assert ambiguous.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_after_an_outage_that_outlasts_every_retry_list_events_returns_every_missed_event_in_order(
    ledger, notifier, notifier_channel, ledger_channel
):
    """The receiver is down longer than the whole retry schedule (here 3 × 200 ms; in
    production about a day), so every delivery of the outage is dead-lettered. The
    outage's events are then made ten minutes old in the ledger's record (the clock
    is not waited for: what the ledger does depends only on their age) and the
    ledger's pruning of published events runs. The merchant catches up from that
    record (kept PAYMESH_OUTBOX_RETENTION_DAYS, 30 by default): every missed event, in
    commit order, with the ids its webhooks carried; then redelivers the dead letters."""
    from datetime import UTC, datetime, timedelta

    from paymesh.events.v1 import event_service_pb2 as epb
    from paymesh.events.v1 import event_service_pb2_grpc as egrpc
    from sqlalchemy import text

    from services.ledger.adapters import repository as ledger_repo

    merchant = await bare_merchant(ledger_channel)
    client = NotifierClient(notifier_channel, merchant.api_key)
    events = egrpc.EventServiceStub(ledger_channel)
    async with WebhookReceiver(ok()) as receiver:
        port = receiver.port
        endpoint, _ = await add_endpoint(ledger_channel, merchant, receiver.url, "payment.*")
        await merchant.create()
        await receiver.wait_for(lambda: receiver.succeeded())
        last_seen = receiver.succeeded()[-1].event_id
    # Down: nothing listens on the port any more.
    payments = [await merchant.create() for _ in range(5)]
    for payment in payments[:2]:
        await merchant.payments.CancelPayment(
            spb.CancelPaymentRequest(payment_id=payment.payment_id), metadata=merchant.auth
        )

    async def all_dead():
        reply = await client.list(endpoint_id=endpoint.endpoint_id, state=npb.DELIVERY_STATE_DEAD_LETTERED)
        return reply.deliveries if len(reply.deliveries) == 7 else None

    dead = await eventually(all_dead, timeout=60)
    async with ledger.engine.begin() as conn:  # ten minutes ago, then the retention job
        await conn.execute(
            text(
                "UPDATE outbox SET created_at = created_at - interval '10 minutes', "
                "published_at = published_at - interval '10 minutes' WHERE merchant_id = :m"
            ),
            {"m": merchant.merchant_id},
        )
        await ledger_repo.outbox.prune_published(conn, datetime.now(UTC) - timedelta(days=30))
    missed = await events.ListEvents(
        epb.ListEventsRequest(after_event_id=last_seen, page_size=100), metadata=merchant.auth
    )
    own = [e for e in missed.events if e.payment.payment_id]  # config changes (the endpoint) are before last_seen
    assert {e.event_id for e in own} == {d.event_id for d in dead}
    order = [(e.payment.payment_id, e.type) for e in own]
    created, cancelled = 1, 7  # PAYMENT_EVENT_TYPE_CREATED, _CANCELLED
    assert order == [(p.payment_id, created) for p in payments] + [(p.payment_id, cancelled) for p in payments[:2]]
    # Back up on the same port: the dead letters go out too, the same event ids.
    async with WebhookReceiver(ok(), port=port) as back:
        assert await client.redeliver(endpoint_id=endpoint.endpoint_id) == 7
        await back.wait_for(lambda: len(back.event_ids(answered_ok=True)) == 7, within=30)
        assert back.event_ids(answered_ok=True) == {d.event_id for d in dead}


async def test_the_notifier_api_over_both_transports(notifier, notifier_channel, ledger_channel):
    """NotifierService is merchant-facing too: the same table over gRPC and HTTP/JSON."""
    async with WebhookReceiver(ok()) as receiver:
        merchant = await bare_merchant(ledger_channel)
        endpoint, _ = await add_endpoint(ledger_channel, merchant, receiver.url)
        reader = await reader_key(ledger_channel, merchant)
        notifier_path = "/paymesh.notifier.v1.NotifierService/"
        auth = merchant.auth
        cases = [
            ("ListDeliveries", {"endpointId": endpoint.endpoint_id}, auth, "ok"),
            ("ListDeliveries", {"eventId": "not-a-uuid"}, auth, "invalid_argument"),
            ("ListDeliveries", {}, reader, "permission_denied"),
            ("GetDelivery", {"deliveryId": "00000000-0000-0000-0000-000000000000"}, auth, "not_found"),
            ("Redeliver", {}, auth, "invalid_argument"),
            ("Redeliver", {"endpointId": endpoint.endpoint_id}, auth, "ok"),
            ("SendTestEvent", {"endpointId": "we_" + "0" * 32}, auth, "not_found"),
            ("SendTestEvent", {"endpointId": endpoint.endpoint_id}, auth, "ok"),
        ]
        for method, body, who, expected in cases:
            via_grpc = await over_grpc(notifier_channel, notifier_path + method, body, who)
            via_http = await over_http(notifier, notifier_path + method, body, who)
            assert via_grpc[0] == expected, (method, body, via_grpc)
            assert via_http[:3] == via_grpc[:3], (method, via_http, via_grpc)
        tests = [r for r in receiver.succeeded() if r.json()["type"] == "payment.test"]
        assert len(tests) == 2  # one test event per transport
        delivered = await over_http(
            notifier, notifier_path + "ListDeliveries", {"endpointId": endpoint.endpoint_id, "pageSize": 100}, auth
        )
        assert [d["eventType"] for d in delivered[3]["deliveries"]].count("test") == 2
