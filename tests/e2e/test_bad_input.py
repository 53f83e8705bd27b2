"""Scenario 5: bad input over every public RPC of the four services — missing and
wrong credentials, undecodable and oversized requests, out-of-range values,
unknown ids, another merchant's ids. Each gets its documented status with a
message, every process keeps serving, and nothing stored changes."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc
from paymesh.listener.v1 import listener_service_pb2 as lpb
from paymesh.notifier.v1 import notifier_service_pb2 as npb
from paymesh.sweeper.v1 import sweeper_service_pb2 as wpb

from tests.support.ledger import ADMIN_TOKEN, bearer, create_merchant, fresh_xpub

C = grpc.StatusCode

# service, method path, request type, who may call it
RPCS = [
    ("ledger", "/paymesh.ledger.v1.PaymentService/CreatePayment", spb.CreatePaymentRequest, "merchant"),
    ("ledger", "/paymesh.ledger.v1.PaymentService/GetPayment", spb.GetPaymentRequest, "merchant"),
    ("ledger", "/paymesh.ledger.v1.PaymentService/ListPayments", spb.ListPaymentsRequest, "merchant"),
    ("ledger", "/paymesh.ledger.v1.PaymentService/CancelPayment", spb.CancelPaymentRequest, "merchant"),
    ("ledger", "/paymesh.ledger.v1.MerchantAdminService/CreateMerchant", apb.CreateMerchantRequest, "admin"),
    ("ledger", "/paymesh.ledger.v1.MerchantAdminService/GetMerchant", apb.GetMerchantRequest, "admin"),
    ("ledger", "/paymesh.ledger.v1.MerchantAdminService/ListMerchants", apb.ListMerchantsRequest, "admin"),
    ("ledger", "/paymesh.ledger.v1.MerchantAdminService/DisableMerchant", apb.DisableMerchantRequest, "admin"),
    ("ledger", "/paymesh.ledger.v1.MerchantAdminService/EnableMerchant", apb.EnableMerchantRequest, "admin"),
    ("ledger", "/paymesh.ledger.v1.MerchantAdminService/RotateApiKey", apb.RotateApiKeyRequest, "admin"),
    ("ledger", "/paymesh.ledger.v1.MerchantAdminService/SetWebhook", apb.SetWebhookRequest, "admin"),
    ("ledger", "/paymesh.ledger.v1.MerchantAdminService/SetXpub", apb.SetXpubRequest, "admin"),
    ("ledger", "/paymesh.ledger.v1.MerchantAdminService/SetTreasury", apb.SetTreasuryRequest, "admin"),
    ("listener", "/paymesh.listener.v1.ListenerService/GetStatus", lpb.GetStatusRequest, "admin"),
    ("listener", "/paymesh.listener.v1.ListenerService/Rescan", lpb.RescanRequest, "admin"),
    ("sweeper", "/paymesh.sweeper.v1.SweeperService/GetStatus", wpb.GetStatusRequest, "admin"),
    ("sweeper", "/paymesh.sweeper.v1.SweeperService/ListSweeps", wpb.ListSweepsRequest, "admin"),
    ("sweeper", "/paymesh.sweeper.v1.SweeperService/SweepNow", wpb.SweepNowRequest, "admin"),
    ("sweeper", "/paymesh.sweeper.v1.SweeperService/RetrySweep", wpb.RetrySweepRequest, "admin"),
    ("notifier", "/paymesh.notifier.v1.NotifierService/ListDeliveries", npb.ListDeliveriesRequest, "either"),
    ("notifier", "/paymesh.notifier.v1.NotifierService/GetDelivery", npb.GetDeliveryRequest, "either"),
    ("notifier", "/paymesh.notifier.v1.NotifierService/Redeliver", npb.RedeliverRequest, "either"),
    ("notifier", "/paymesh.notifier.v1.NotifierService/SendTestEvent", npb.SendTestEventRequest, "either"),
]
NEVER = {C.INTERNAL, C.UNKNOWN, C.UNIMPLEMENTED, C.DEADLINE_EXCEEDED}


def raw_call(channel, path):
    return channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)


async def code_of(channel, path: str, payload: bytes, metadata=()) -> tuple[C, str]:
    try:
        await raw_call(channel, path)(payload, metadata=metadata, timeout=15)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return C.OK, ""


@pytest_asyncio.fixture(loop_scope="session")
async def channels(mesh):
    opened = {
        name: grpc.aio.insecure_channel(mesh.addr(name)) for name in ("ledger", "listener", "sweeper", "notifier")
    }
    try:
        yield opened
    finally:
        for channel in opened.values():
            await channel.close()


async def snapshot(merchant):
    listed = await merchant.payments.ListPayments(spb.ListPaymentsRequest(page_size=500), metadata=merchant.auth)
    return [(p.payment_id, p.status, p.amount_due, p.version) for p in listed.payments]


@pytest.mark.asyncio(loop_scope="session")
async def test_every_rpc_checks_credentials_and_input(mesh, channels):
    merchant = await create_merchant(channels["ledger"], fresh_xpub()[0])
    other = await create_merchant(channels["ledger"], fresh_xpub()[0])
    mine = await merchant.create(amount="1234", idempotency_key="bad-input-1")
    before = await snapshot(merchant)
    for service, path, request_type, who in RPCS:
        channel = channels[service]
        valid = bearer(ADMIN_TOKEN) if who != "merchant" else merchant.auth
        for metadata, expected in [
            ((), C.UNAUTHENTICATED),
            (bearer("not-a-token"), C.UNAUTHENTICATED),
            ((("authorization", "Basic x"),), C.UNAUTHENTICATED),
        ]:
            code, details = await code_of(channel, path, request_type().SerializeToString(), metadata)
            assert code == expected and details, f"{path} {metadata}: {code} {details}"
        if who == "admin":  # a merchant key is no operator credential
            code, _ = await code_of(channel, path, request_type().SerializeToString(), merchant.auth)
            assert code in (C.UNAUTHENTICATED, C.PERMISSION_DENIED), f"{path}: merchant key accepted ({code})"
        code, details = await code_of(channel, path, b"\xff\xfe\xfd garbage", valid)
        assert code == C.INVALID_ARGUMENT and "not a valid protobuf" in details, f"{path}: {code} {details}"
        code, details = await code_of(channel, path, b"\x0a" + b"\xff\xff\xff\x02" + b"x" * (5 * 1024 * 1024), valid)
        assert code in (C.RESOURCE_EXHAUSTED, C.INVALID_ARGUMENT), f"{path}: oversized gave {code}"
        # A message of another type: decodes to nonsense fields, never to a crash.
        code, details = await code_of(
            channel,
            path,
            spb.CreatePaymentRequest(amount="x" * 300, chain_id=2**63, asset="?" * 100).SerializeToString(),
            valid,
        )
        assert code not in NEVER, f"{path}: wrong message type gave {code} {details}"
        code, details = await code_of(channel, path, b"", valid)  # every field at its default
        assert code not in NEVER, f"{path}: empty request gave {code} {details}"

    specific = [
        (
            "ledger",
            "/paymesh.ledger.v1.PaymentService/GetPayment",
            spb.GetPaymentRequest(payment_id=mine.payment_id),
            other.auth,
            C.NOT_FOUND,
        ),
        (
            "ledger",
            "/paymesh.ledger.v1.PaymentService/CancelPayment",
            spb.CancelPaymentRequest(payment_id=mine.payment_id),
            other.auth,
            C.NOT_FOUND,
        ),
        (
            "ledger",
            "/paymesh.ledger.v1.PaymentService/CreatePayment",
            spb.CreatePaymentRequest(chain_id=31337, asset="ETH", amount=str(2**256)),
            merchant.auth,
            C.INVALID_ARGUMENT,
        ),
        (
            "ledger",
            "/paymesh.ledger.v1.PaymentService/CreatePayment",
            spb.CreatePaymentRequest(chain_id=31337, asset="ETH", amount="-5"),
            merchant.auth,
            C.INVALID_ARGUMENT,
        ),
        (
            "ledger",
            "/paymesh.ledger.v1.PaymentService/ListPayments",
            spb.ListPaymentsRequest(page_token="%%%"),
            merchant.auth,
            C.INVALID_ARGUMENT,
        ),
        (
            "ledger",
            "/paymesh.ledger.v1.MerchantAdminService/GetMerchant",
            apb.GetMerchantRequest(merchant_id="mch_x"),
            bearer(ADMIN_TOKEN),
            C.NOT_FOUND,
        ),
        (
            "ledger",
            "/paymesh.ledger.v1.MerchantAdminService/SetTreasury",
            apb.SetTreasuryRequest(
                merchant_id=merchant.merchant_id, treasury=apb.Treasury(chain_id=31337, address="0x1")
            ),
            bearer(ADMIN_TOKEN),
            C.INVALID_ARGUMENT,
        ),
        (
            "listener",
            "/paymesh.listener.v1.ListenerService/Rescan",
            lpb.RescanRequest(chain_id=31337, from_block=10, to_block=5),
            bearer(ADMIN_TOKEN),
            C.INVALID_ARGUMENT,
        ),
        (
            "listener",
            "/paymesh.listener.v1.ListenerService/Rescan",
            lpb.RescanRequest(chain_id=999, from_block=1, to_block=2),
            bearer(ADMIN_TOKEN),
            C.NOT_FOUND,
        ),
        (
            "listener",
            "/paymesh.listener.v1.ListenerService/Rescan",
            lpb.RescanRequest(chain_id=31337, from_block=1, to_block=10**9),
            bearer(ADMIN_TOKEN),
            C.INVALID_ARGUMENT,
        ),
        (
            "sweeper",
            "/paymesh.sweeper.v1.SweeperService/SweepNow",
            wpb.SweepNowRequest(payment_id="pay_nope"),
            bearer(ADMIN_TOKEN),
            C.NOT_FOUND,
        ),
        (
            "sweeper",
            "/paymesh.sweeper.v1.SweeperService/SweepNow",
            wpb.SweepNowRequest(),
            bearer(ADMIN_TOKEN),
            C.INVALID_ARGUMENT,
        ),
        (
            "sweeper",
            "/paymesh.sweeper.v1.SweeperService/SweepNow",
            wpb.SweepNowRequest(payment_id=mine.payment_id),
            bearer(ADMIN_TOKEN),
            C.FAILED_PRECONDITION,
        ),
        (
            "notifier",
            "/paymesh.notifier.v1.NotifierService/GetDelivery",
            npb.GetDeliveryRequest(delivery_id="dlv_x"),
            bearer(ADMIN_TOKEN),
            C.INVALID_ARGUMENT,
        ),
        (
            "notifier",
            "/paymesh.notifier.v1.NotifierService/GetDelivery",
            npb.GetDeliveryRequest(delivery_id="6f1c2a7e-0000-4000-8000-000000000000"),
            bearer(ADMIN_TOKEN),
            C.NOT_FOUND,
        ),
        (
            "notifier",
            "/paymesh.notifier.v1.NotifierService/ListDeliveries",
            npb.ListDeliveriesRequest(page_token="%"),
            merchant.auth,
            C.INVALID_ARGUMENT,
        ),
        (
            "notifier",
            "/paymesh.notifier.v1.NotifierService/Redeliver",
            npb.RedeliverRequest(),
            bearer(ADMIN_TOKEN),
            C.INVALID_ARGUMENT,
        ),
    ]
    for service, path, request, metadata, expected in specific:
        code, details = await code_of(channels[service], path, request.SerializeToString(), metadata)
        assert code == expected and details, f"{path} {request}: {code} {details}"

    # Every process still serves, and nothing stored changed.
    for name, channel in channels.items():
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    assert await snapshot(merchant) == before


def test_create_payment_fuzz_never_crashes(mesh):
    """Property: whatever a merchant sends, the answer is a documented status."""
    with grpc.insecure_channel(mesh.addr("ledger")) as channel:
        import asyncio

        merchant = asyncio.run(_sync_merchant(mesh))
        stub = sgrpc.PaymentServiceStub(channel)

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            chain_id=st.sampled_from([0, 1, 31337, 8453, 2**64 - 1]),
            asset=st.one_of(st.sampled_from(["ETH", "tusd", "", "DOGE"]), st.text(max_size=40)),
            amount=st.one_of(
                st.integers(-(2**300), 2**300).map(str),
                st.text(max_size=90),
                st.sampled_from(["0", "1", "1.0", "1e18", " 1", "0x10", str(2**256 - 1)]),
            ),
            metadata=st.dictionaries(st.text(max_size=70), st.text(max_size=600), max_size=40),
            order=st.text(max_size=200),
            key=st.text(max_size=200),
        )
        def create(chain_id, asset, amount, metadata, order, key):
            request = spb.CreatePaymentRequest(
                chain_id=chain_id,
                asset=asset,
                amount=amount,
                metadata=metadata,
                merchant_order_id=order,
                idempotency_key=key,
            )
            try:
                reply = stub.CreatePayment(request, metadata=merchant, timeout=15)
            except grpc.RpcError as err:
                assert err.code() in (C.INVALID_ARGUMENT, C.NOT_FOUND, C.ALREADY_EXISTS), (err.code(), err.details())
                assert err.details()
                return
            assert int(reply.payment.amount_due) == int(amount) and 0 < int(amount) < 2**256

        create()


async def _sync_merchant(mesh):
    async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        handle = await create_merchant(channel, fresh_xpub()[0])
    return handle.auth
