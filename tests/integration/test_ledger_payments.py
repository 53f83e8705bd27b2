"""Merchant API of the ledger against real Postgres and NATS."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc

from services.ledger.domain.hd import AddressDeriver
from tests.support.ledger import bearer, timestamp

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_create_get_list_round_trip(merchant):
    created = await merchant.create(
        amount="1500000",
        asset="tusd",
        merchant_order_id="order-1",
        metadata={"sku": "book"},
        idempotency_key="k-round-trip",
    )
    assert created.status == pb.PAYMENT_STATUS_PENDING
    assert created.asset == "TUSD" and created.decimals == 6
    assert created.token_address == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert created.amount_due == "1500000" and created.amount_received == "0"
    # The deposit address is <xpub>/0/<index>: the ledger holds only the xpub.
    assert created.deposit_address == AddressDeriver(merchant.xpub).address(0)
    fetched = await merchant.get(created.payment_id)
    assert fetched == created
    listed = await merchant.payments.ListPayments(spb.ListPaymentsRequest(), metadata=merchant.auth)
    assert [p.payment_id for p in listed.payments] == [created.payment_id]


async def test_each_payment_gets_a_fresh_address(merchant):
    payments = [await merchant.create(amount=str(i + 1)) for i in range(12)]
    addresses = {p.deposit_address for p in payments}
    assert len(addresses) == 12
    deriver = AddressDeriver(merchant.xpub)
    assert addresses == {deriver.address(i) for i in range(12)}


async def test_idempotent_create_under_concurrent_retries(merchant):
    request = dict(amount="777", idempotency_key="same-key", merchant_order_id="o-7")
    replies = await asyncio.gather(
        *(
            merchant.payments.CreatePayment(
                spb.CreatePaymentRequest(chain_id=31337, asset="ETH", **request), metadata=merchant.auth
            )
            for _ in range(20)
        )
    )
    ids = {r.payment.payment_id for r in replies}
    assert len(ids) == 1
    assert sum(r.created for r in replies) == 1
    listed = await merchant.payments.ListPayments(spb.ListPaymentsRequest(), metadata=merchant.auth)
    assert len(listed.payments) == 1


async def test_same_key_other_parameters_is_refused(merchant):
    await merchant.create(amount="100", idempotency_key="k1")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.create(amount="101", idempotency_key="k1")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "different parameters" in err.value.details()


async def test_same_key_other_expiry_is_refused(merchant):
    """The expiry is a parameter like the others: a retry repeats it as it was given."""
    at = timestamp(datetime.now(UTC) + timedelta(hours=2))
    first = {
        "k-in": dict(expires_in=Duration(seconds=600)),
        "k-at": dict(expires_at=at),
        "k-default": {},
    }
    other = {
        "k-in": [dict(expires_in=Duration(seconds=601)), dict(expires_at=at), {}],
        "k-at": [
            dict(expires_at=timestamp(datetime.now(UTC) + timedelta(hours=3))),
            dict(expires_in=Duration(seconds=7200)),
        ],
        "k-default": [dict(expires_in=Duration(seconds=3600))],  # the default's length, asked for explicitly
    }
    for key, expiry in first.items():
        created = await merchant.create(amount="100", idempotency_key=key, **expiry)
        again = await merchant.create(amount="100", idempotency_key=key, **expiry)
        assert again.payment_id == created.payment_id  # the same request is a retry
        for changed in other[key]:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await merchant.create(amount="100", idempotency_key=key, **changed)
            assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS, (key, changed)
            assert created.payment_id in err.value.details()


async def test_merchants_are_isolated(merchant, other_merchant):
    mine = await merchant.create(amount="5")
    for call, request in [
        (other_merchant.payments.GetPayment, spb.GetPaymentRequest(payment_id=mine.payment_id)),
        (other_merchant.payments.CancelPayment, spb.CancelPaymentRequest(payment_id=mine.payment_id)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request, metadata=other_merchant.auth)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    theirs = await other_merchant.payments.ListPayments(spb.ListPaymentsRequest(), metadata=other_merchant.auth)
    assert mine.payment_id not in {p.payment_id for p in theirs.payments}
    assert (await merchant.get(mine.payment_id)).status == pb.PAYMENT_STATUS_PENDING


async def test_paging_and_filters(merchant):
    created = [await merchant.create(amount=str(10 + i), merchant_order_id=f"o{i % 2}") for i in range(7)]
    seen, token = [], ""
    for _ in range(10):
        page = await merchant.payments.ListPayments(
            spb.ListPaymentsRequest(page_size=3, page_token=token), metadata=merchant.auth
        )
        seen += [p.payment_id for p in page.payments]
        token = page.next_page_token
        if not token:
            break
    assert seen == [p.payment_id for p in reversed(created)]
    odd = await merchant.payments.ListPayments(spb.ListPaymentsRequest(merchant_order_id="o1"), metadata=merchant.auth)
    assert len(odd.payments) == 3
    cancelled = await merchant.payments.ListPayments(
        spb.ListPaymentsRequest(statuses=[pb.PAYMENT_STATUS_CANCELLED]), metadata=merchant.auth
    )
    assert len(cancelled.payments) == 0


async def test_cancel_pending_payment(merchant):
    payment = await merchant.create(amount="9")
    reply = await merchant.payments.CancelPayment(
        spb.CancelPaymentRequest(payment_id=payment.payment_id, reason="oos"), metadata=merchant.auth
    )
    assert reply.payment.status == pb.PAYMENT_STATUS_CANCELLED
    again = await merchant.payments.CancelPayment(
        spb.CancelPaymentRequest(payment_id=payment.payment_id), metadata=merchant.auth
    )
    assert again.payment.status == pb.PAYMENT_STATUS_CANCELLED


BAD_CREATES = [
    (dict(amount="-1"), grpc.StatusCode.INVALID_ARGUMENT, "digits only"),
    (dict(amount="1.5"), grpc.StatusCode.INVALID_ARGUMENT, "digits only"),
    (dict(amount="1e18"), grpc.StatusCode.INVALID_ARGUMENT, "digits only"),
    (dict(amount="abc"), grpc.StatusCode.INVALID_ARGUMENT, "digits only"),
    (dict(amount=""), grpc.StatusCode.INVALID_ARGUMENT, "required"),
    (dict(amount="0"), grpc.StatusCode.INVALID_ARGUMENT, "greater than zero"),
    (dict(amount=str(2**256)), grpc.StatusCode.INVALID_ARGUMENT, "2^256"),
    (
        dict(amount="1" * 100),
        grpc.StatusCode.INVALID_ARGUMENT,
        "has 100 digits; the largest EVM amount (2^256-1) has 78",
    ),
    (dict(amount="1" * 100_000), grpc.StatusCode.INVALID_ARGUMENT, "has 100000 digits"),
    (dict(amount="007"), grpc.StatusCode.INVALID_ARGUMENT, "must not start with a zero; write '7'"),
    (dict(amount="00"), grpc.StatusCode.INVALID_ARGUMENT, "must not start with a zero"),
    (dict(asset="ETH "), grpc.StatusCode.INVALID_ARGUMENT, "spaces around it"),
    (dict(asset=" TUSD"), grpc.StatusCode.INVALID_ARGUMENT, "spaces around it"),
    (dict(chain_id=999), grpc.StatusCode.NOT_FOUND, "chain 999 is not configured"),
    (dict(chain_id=0), grpc.StatusCode.INVALID_ARGUMENT, "chain_id is required"),
    (dict(asset="DOGE"), grpc.StatusCode.NOT_FOUND, "not configured on chain 31337"),
    (dict(asset=""), grpc.StatusCode.INVALID_ARGUMENT, "asset is required"),
    (
        dict(expires_at=timestamp(datetime.now(UTC) - timedelta(minutes=5))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "in the past",
    ),
    (dict(expires_in=Duration(seconds=5)), grpc.StatusCode.INVALID_ARGUMENT, "between 1 minute and 30 days"),
    (dict(expires_in=Duration(seconds=-60)), grpc.StatusCode.INVALID_ARGUMENT, "positive"),
    (dict(metadata={f"k{i}": "v" for i in range(40)}), grpc.StatusCode.INVALID_ARGUMENT, "at most 32"),
    (dict(metadata={"k": "v" * 600}), grpc.StatusCode.INVALID_ARGUMENT, "longer than 512"),
    (dict(merchant_order_id="x" * 200), grpc.StatusCode.INVALID_ARGUMENT, "merchant_order_id"),
    (dict(idempotency_key="x" * 200), grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key"),
]


@pytest.mark.parametrize(("fields", "code", "message"), BAD_CREATES)
async def test_bad_create_input_is_refused_and_stores_nothing(merchant, fields, code, message):
    request = dict(chain_id=31337, asset="ETH", amount="100")
    request.update(fields)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.payments.CreatePayment(spb.CreatePaymentRequest(**request), metadata=merchant.auth)
    assert err.value.code() == code
    assert message in err.value.details()
    listed = await merchant.payments.ListPayments(spb.ListPaymentsRequest(), metadata=merchant.auth)
    assert list(listed.payments) == []


async def test_credentials(ledger_channel, merchant):
    stub = sgrpc.PaymentServiceStub(ledger_channel)
    request = spb.ListPaymentsRequest()
    cases = [
        ((), grpc.StatusCode.UNAUTHENTICATED, "missing credentials"),
        ((("authorization", "Basic abc"),), grpc.StatusCode.UNAUTHENTICATED, "Bearer"),
        (bearer("pmk_wrong"), grpc.StatusCode.UNAUTHENTICATED, "not recognised"),
    ]
    for metadata, code, message in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListPayments(request, metadata=metadata)
        assert err.value.code() == code and message in err.value.details()


async def test_bad_page_token_and_unknown_payment(merchant):
    for token in ["garbage", "eyJ0IjoxfQ", "x" * 600]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await merchant.payments.ListPayments(spb.ListPaymentsRequest(page_token=token), metadata=merchant.auth)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.payments.ListPayments(spb.ListPaymentsRequest(page_size=10_000), metadata=merchant.auth)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for payment_id, code in [("pay_doesnotexist", grpc.StatusCode.NOT_FOUND), ("", grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await merchant.get(payment_id)
        assert err.value.code() == code


async def test_expiry_moves_unpaid_payment_to_expired(merchant, ledger):
    payment = await merchant.create(amount="5", expires_in=Duration(seconds=60))
    # Make it due now (the API refuses expiries under a minute on purpose).
    async with ledger.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(text("UPDATE payments SET expires_at = now() WHERE id = :id"), {"id": payment.payment_id})
    from tests.support.ledger import eventually

    async def expired():
        return (await merchant.get(payment.payment_id)).status == pb.PAYMENT_STATUS_EXPIRED

    await eventually(expired)
