"""Payment policy and resolutions on the ledger, real Postgres and NATS: the merchant's
policy and a payment's override, the tolerance, the depth, the watch window,
ResolvePayment; bad policies refused with nothing stored. (Fiat prices and the
rate sources: test_ledger_fiat.py.)"""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb

from tests.integration.test_ledger_chain_events import wait_status
from tests.support.ledger import (
    ADMIN_TOKEN,
    bearer,
    eventually,
    next_block,
    publish_chain,
    publish_head,
    transfer_event,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def set_policy(channel, merchant, policy: pb.PaymentPolicy) -> apb.Merchant:
    admin = agrpc.MerchantAdminServiceStub(channel)
    reply = await admin.SetPaymentPolicy(
        apb.SetPaymentPolicyRequest(merchant_id=merchant.merchant_id, policy=policy), metadata=bearer(ADMIN_TOKEN)
    )
    return reply.merchant


async def pay(js, payment, amount: int, *, depth: int = 2) -> None:
    """A transfer of `amount` to the payment's address, buried `depth` blocks deep."""
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, amount, block=block))
    await publish_head(js, block + depth - 1)


async def count_payments(ledger, merchant_id: str) -> int:
    from sqlalchemy import text

    async with ledger.engine.connect() as conn:
        return (
            await conn.execute(text("SELECT count(*) FROM payments WHERE merchant_id = :m"), {"m": merchant_id})
        ).scalar_one()


async def test_within_the_tolerance_is_confirmed_beyond_it_underpaid(merchant, js):
    policy = pb.PaymentPolicy(underpayment_tolerance_bps=50)  # 0.5 %
    inside = await merchant.create(amount="1000000", policy=policy)
    outside = await merchant.create(amount="1000000", policy=policy)
    assert inside.amount_minimum == "995000" and inside.policy.underpayment_tolerance_bps == 50
    await pay(js, inside, 997_000)  # 0.3 % short
    await pay(js, outside, 994_000)  # 0.6 % short
    ok = await wait_status(merchant, inside.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert ok.amount_confirmed == "997000"
    await wait_status(merchant, outside.payment_id, pb.PAYMENT_STATUS_UNDERPAID)


async def test_merchant_policy_applies_and_a_payment_overrides_it(ledger_channel, merchant, js):
    updated = await set_policy(
        ledger_channel,
        merchant,
        pb.PaymentPolicy(
            underpayment_tolerance_bps=100,
            confirmations=[pb.ChainConfirmations(chain_id=31337, confirmations=4)],
            watch_after_expiry=Duration(seconds=3600),
        ),
    )
    assert updated.payment_policy.underpayment_tolerance_bps == 100
    ledger_cache = 1.5  # the API key cache (api_key_cache_seconds = 1 s) holds the old policy briefly

    async def policy_applied():
        p = await merchant.create(amount="1000")
        return p if p.confirmations_required == 4 else None

    first = await eventually(policy_applied, timeout=5 * ledger_cache)
    assert first.amount_minimum == "990" and first.policy.underpayment_tolerance_bps == 100
    assert first.watch_until.ToDatetime() - first.expires_at.ToDatetime() == timedelta(hours=1)
    # The payment's own fields replace the merchant's, field by field.
    own = await merchant.create(
        amount="1000", policy=pb.PaymentPolicy(underpayment_tolerance_bps=0, watch_after_expiry=Duration(seconds=0))
    )
    assert own.amount_minimum == "1000" and own.confirmations_required == 4
    assert own.watch_until == own.expires_at
    # Depth 4: two blocks are not enough, four are.
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(own.deposit_address, 1000, block=block))
    await publish_head(js, block + 1)
    await wait_status(merchant, own.payment_id, pb.PAYMENT_STATUS_DETECTED)
    await publish_head(js, block + 3)
    await wait_status(merchant, own.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    # Existing payments keep the policy they were created with.
    await set_policy(ledger_channel, merchant, pb.PaymentPolicy())
    assert (await merchant.get(first.payment_id)).confirmations_required == 4


@pytest.mark.parametrize(
    ("policy", "code", "message"),
    [
        (pb.PaymentPolicy(underpayment_tolerance_bps=10_001), "INVALID_ARGUMENT", "0 to 10000 (100 %)"),
        (
            pb.PaymentPolicy(confirmations=[pb.ChainConfirmations(chain_id=31337, confirmations=1)]),
            "INVALID_ARGUMENT",
            "below the chain's minimum of 2",
        ),
        (
            pb.PaymentPolicy(confirmations=[pb.ChainConfirmations(chain_id=999, confirmations=5)]),
            "INVALID_ARGUMENT",
            "chain 999 is not configured",
        ),
        (
            pb.PaymentPolicy(
                confirmations=[
                    pb.ChainConfirmations(chain_id=31337, confirmations=3),
                    pb.ChainConfirmations(chain_id=31337, confirmations=4),
                ]
            ),
            "INVALID_ARGUMENT",
            "names chain 31337 twice",
        ),
        (
            pb.PaymentPolicy(
                confirmation_tiers=[
                    pb.ConfirmationTier(min_price=pb.Money(currency="USD", amount="1.001"), confirmations=9)
                ]
            ),
            "INVALID_ARGUMENT",
            "USD has 2 decimals",
        ),
        (
            pb.PaymentPolicy(watch_after_expiry=Duration(seconds=91 * 86400)),
            "INVALID_ARGUMENT",
            "0 to 90 days",
        ),
    ],
)
async def test_bad_policies_are_refused_and_nothing_is_stored(ledger, ledger_channel, merchant, policy, code, message):
    before = await count_payments(ledger, merchant.merchant_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.create(amount="1000", policy=policy)
    assert err.value.code().name == code and message in err.value.details()
    assert await count_payments(ledger, merchant.merchant_id) == before
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await set_policy(ledger_channel, merchant, policy)
    assert err.value.code().name == code and message in err.value.details()
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    stored = await admin.GetMerchant(
        apb.GetMerchantRequest(merchant_id=merchant.merchant_id), metadata=bearer(ADMIN_TOKEN)
    )
    assert stored.merchant.payment_policy == pb.PaymentPolicy()


async def resolve(merchant, payment_id, resolution, note=""):
    reply = await merchant.payments.ResolvePayment(
        spb.ResolvePaymentRequest(payment_id=payment_id, resolution=resolution, note=note), metadata=merchant.auth
    )
    return reply.payment


async def test_resolve_an_underpayment_as_accepted(merchant, js, nats_server):
    import nats

    nc = await nats.connect(nats_server.url)
    try:
        events = await nc.subscribe(f"paymesh.payments.{merchant.merchant_id}.resolved")
        payment = await merchant.create(amount="1000")
        with pytest.raises(grpc.aio.AioRpcError) as err:  # nothing to resolve yet
            await resolve(merchant, payment.payment_id, pb.RESOLUTION_ACCEPTED)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "pending" in err.value.details()
        await pay(js, payment, 600)
        await wait_status(merchant, payment.payment_id, pb.PAYMENT_STATUS_UNDERPAID)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await resolve(merchant, payment.payment_id, pb.RESOLUTION_UNSPECIFIED)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "resolution is required" in err.value.details()
        resolved = await resolve(merchant, payment.payment_id, pb.RESOLUTION_ACCEPTED, "customer paid the rest by card")
        assert resolved.resolution == pb.RESOLUTION_ACCEPTED and resolved.resolution_note.startswith("customer")
        assert resolved.HasField("resolved_at") and resolved.status == pb.PAYMENT_STATUS_UNDERPAID
        event = evpb.PaymentEvent.FromString((await events.next_msg(timeout=10)).data)
        assert event.type == evpb.PAYMENT_EVENT_TYPE_RESOLVED and event.payment.resolution == pb.RESOLUTION_ACCEPTED
        # The same resolution again is harmless; another is refused.
        again = await resolve(merchant, payment.payment_id, pb.RESOLUTION_ACCEPTED)
        assert again.version == resolved.version
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await resolve(merchant, payment.payment_id, pb.RESOLUTION_REFUND)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "already resolved" in err.value.details()
    finally:
        await nc.drain()


async def test_an_overpayment_resolves_to_refund_and_a_confirmed_one_cannot(merchant, js, other_merchant):
    over = await merchant.create(amount="1000")
    exact = await merchant.create(amount="1000")
    await pay(js, over, 1500)
    await pay(js, exact, 1000)
    await wait_status(merchant, over.payment_id, pb.PAYMENT_STATUS_OVERPAID)
    await wait_status(merchant, exact.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await resolve(other_merchant, over.payment_id, pb.RESOLUTION_REFUND)  # not its payment
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await resolve(merchant, over.payment_id, pb.RESOLUTION_REFUND)).resolution == pb.RESOLUTION_REFUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await resolve(merchant, exact.payment_id, pb.RESOLUTION_ACCEPTED)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "confirmed" in err.value.details()


async def test_priced_payments_need_rate_sources(ledger, merchant):
    """This ledger configures no rate sources: a price is refused with the reason, nothing stored."""
    before = await count_payments(ledger, merchant.merchant_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.create(amount="", price=pb.Money(currency="USD", amount="19.99"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "rates.yaml" in err.value.details()
    assert await count_payments(ledger, merchant.merchant_id) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "1000", "price": pb.Money(currency="USD", amount="19.99")}, "not both"),
        ({"amount": ""}, "amount or price is required"),
        ({"amount": "", "price": pb.Money(currency="XYZ", amount="1")}, "not an ISO 4217 currency"),
        ({"amount": "", "price": pb.Money(currency="usd", amount="1")}, "three capital letters"),
        ({"amount": "", "price": pb.Money(currency="USD", amount="19.999")}, "USD has 2 decimals"),
        ({"amount": "", "price": pb.Money(currency="JPY", amount="1.5")}, "JPY has no decimals"),
        ({"amount": "", "price": pb.Money(currency="USD", amount="1e3")}, "plain decimal number"),
        ({"amount": "", "price": pb.Money(currency="USD", amount="-1")}, "plain decimal number"),
        ({"amount": "", "price": pb.Money(currency="USD", amount=" 5")}, "plain decimal number"),
        ({"amount": "", "price": pb.Money(currency="USD", amount="0.00")}, "greater than zero"),
        ({"amount": "", "price": pb.Money(currency="USD", amount="")}, "plain decimal number"),
    ],
)
async def test_bad_prices_are_invalid_arguments(ledger, merchant, fields, message):
    before = await count_payments(ledger, merchant.merchant_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.create(**fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert message in err.value.details()
    assert await count_payments(ledger, merchant.merchant_id) == before
