"""The ledger's side of the public checkout (CheckoutLedgerService) on real Postgres
and NATS: every payment gets an unguessable checkout token (in the reply and in its
events), the checkout finds the payment by that token only and sees only what its
customer may see, live changes stream (confirmations counting up), and return URLs
are checked where they enter."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import checkout_ledger_service_pb2 as cpb
from paymesh.ledger.v1 import checkout_ledger_service_pb2_grpc as cgrpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb

from tests.support.ledger import (
    CHECKOUT_LEDGER_TOKEN,
    SWEEP_LEDGER_TOKEN,
    bearer,
    next_block,
    publish_chain,
    publish_head,
    transfer_event,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
AUTH = bearer(CHECKOUT_LEDGER_TOKEN)


async def test_a_payment_has_a_checkout_token_that_opens_only_its_view(ledger_channel, merchant, js):
    sub = await js.subscribe(f"paymesh.payments.{merchant.merchant_id}.created", ordered_consumer=True)
    payment = await merchant.create(
        amount="1000", description="2 coffees <b>&</b>", return_url="https://shop.example/thanks?o=1"
    )
    assert len(payment.checkout_token) >= 32 and payment.checkout_token not in payment.payment_id
    assert (payment.description, payment.return_url) == ("2 coffees <b>&</b>", "https://shop.example/thanks?o=1")
    created = evpb.PaymentEvent.FromString((await sub.next_msg(timeout=10)).data)
    assert created.payment.checkout_token == payment.checkout_token
    await sub.unsubscribe()
    checkout = cgrpc.CheckoutLedgerServiceStub(ledger_channel)
    view = (
        await checkout.GetCheckout(cpb.GetCheckoutRequest(checkout_token=payment.checkout_token), metadata=AUTH)
    ).checkout
    assert view.merchant_name and view.description == "2 coffees <b>&</b>"
    assert (view.deposit_address, view.status, view.return_url) == (
        payment.deposit_address,
        pb.PAYMENT_STATUS_PENDING,
        "https://shop.example/thanks?o=1",
    )
    assert [(o.chain_id, o.asset, o.amount_due) for o in view.options] == [(31337, "ETH", "1000")]
    # The view carries no ids or merchant data: it has no such fields at all.
    assert not {"payment_id", "merchant_id", "metadata"} & {f.name for f in cpb.CheckoutView.DESCRIPTOR.fields}


@pytest.mark.parametrize("token", ["", "x", "A" * 32, "../../etc/passwd" + "a" * 20, "a" * 65])
async def test_unknown_or_malformed_tokens_are_one_not_found(ledger_channel, token):
    checkout = cgrpc.CheckoutLedgerServiceStub(ledger_channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await checkout.GetCheckout(cpb.GetCheckoutRequest(checkout_token=token), metadata=AUTH)
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, "no such checkout")


async def test_only_the_checkout_token_opens_the_service(ledger_channel, merchant):
    payment = await merchant.create(amount="1000")
    checkout = cgrpc.CheckoutLedgerServiceStub(ledger_channel)
    request = cpb.GetCheckoutRequest(checkout_token=payment.checkout_token)
    for metadata, code in (
        (bearer(SWEEP_LEDGER_TOKEN), grpc.StatusCode.UNAUTHENTICATED),
        (merchant.auth, grpc.StatusCode.UNAUTHENTICATED),
        ((), grpc.StatusCode.UNAUTHENTICATED),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await checkout.GetCheckout(request, metadata=metadata)
        assert err.value.code() == code


async def test_watch_streams_confirmations_counting_up_then_confirmed(ledger_channel, merchant, js):
    payment = await merchant.create(amount="1000")
    checkout = cgrpc.CheckoutLedgerServiceStub(ledger_channel)
    stream = checkout.WatchCheckout(cpb.WatchCheckoutRequest(checkout_token=payment.checkout_token), metadata=AUTH)
    views: list[cpb.CheckoutView] = []

    async def read() -> None:
        async for reply in stream:
            views.append(reply.checkout)

    async def seen(check) -> None:
        for _ in range(150):  # bounded: 15 s
            if any(check(v) for v in views):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not streamed: {[(v.status, v.confirmations) for v in views]}")

    reader = asyncio.create_task(read())
    try:
        block = next_block()
        await publish_head(js, block)
        await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 1000, block=block))
        await seen(lambda v: v.status == pb.PAYMENT_STATUS_DETECTED and v.confirmations == 1)
        await publish_head(js, block + 1)  # the 2nd confirmation: the depth
        await seen(lambda v: v.status == pb.PAYMENT_STATUS_CONFIRMED)
    finally:
        stream.cancel()
        reader.cancel()
    statuses = [v.status for v in views]
    assert statuses[0] == pb.PAYMENT_STATUS_PENDING
    detected = [v for v in views if v.status == pb.PAYMENT_STATUS_DETECTED]
    assert detected and (detected[0].confirmations, detected[0].confirmations_required) == (1, 2)
    assert statuses[-1] == pb.PAYMENT_STATUS_CONFIRMED and views[-1].confirmations == 0


BAD_RETURN_URLS = [
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://shop.example/thanks",  # http:// is for development, when the operator allows it
    "ftp://shop.example/",
    "https://user:pass@shop.example/",
    "https:///no-host",
    "https://shop.example/a b",
    "/relative/path",
    "https://shop.example/" + "a" * 2048,
]


@pytest.mark.parametrize("url", BAD_RETURN_URLS)
async def test_bad_return_urls_are_refused(merchant, url):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.create(amount="1000", return_url=url)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "return_url" in err.value.details()


async def test_a_description_longer_than_512_characters_is_refused(merchant):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.payments.CreatePayment(
            spb.CreatePaymentRequest(chain_id=31337, asset="ETH", amount="1", description="x" * 513),
            metadata=merchant.auth,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "description" in err.value.details()
