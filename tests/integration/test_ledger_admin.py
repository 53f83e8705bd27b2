"""Operator API (MerchantAdminService) and the internal API's credentials."""

from __future__ import annotations

import grpc
import pytest
from paymesh.ledger.v1 import address_feed_service_pb2 as fpb
from paymesh.ledger.v1 import address_feed_service_pb2_grpc as fgrpc
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import merchant_directory_service_pb2 as dpb
from paymesh.ledger.v1 import merchant_directory_service_pb2_grpc as dgrpc
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as swpb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as swgrpc

from tests.support.ledger import (
    ADDRESS_FEED_TOKEN,
    ADMIN_TOKEN,
    MERCHANT_DIRECTORY_TOKEN,
    SWEEP_LEDGER_TOKEN,
    bearer,
    eventually,
    fresh_xpub,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
TREASURY = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"


ADMIN = bearer(ADMIN_TOKEN)


async def expect(code, message, call, request, metadata=ADMIN):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request, metadata=metadata)
    assert err.value.code() == code, err.value.details()
    assert message in err.value.details()


async def test_admin_credentials(ledger_channel):
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    await expect(
        grpc.StatusCode.UNAUTHENTICATED,
        "missing credentials",
        admin.ListMerchants,
        apb.ListMerchantsRequest(),
        metadata=(),
    )
    await expect(
        grpc.StatusCode.UNAUTHENTICATED,
        "wrong admin token",
        admin.ListMerchants,
        apb.ListMerchantsRequest(),
        metadata=bearer("nope"),
    )


async def test_each_internal_service_takes_only_its_callers_token(ledger_channel, merchant):
    """The listener's token cannot complete a sweep; the sweeper's cannot read webhook
    secrets; the notifier's cannot claim sweeps; the operator's opens none of them."""
    from services.common.grpc_client import reason_of

    sweeps = swgrpc.SweepLedgerServiceStub(ledger_channel)
    directory = dgrpc.MerchantDirectoryServiceStub(ledger_channel)
    feed = fgrpc.AddressFeedServiceStub(ledger_channel)

    async def feed_call(request, metadata):
        async for reply in feed.WatchAddresses(request, metadata=metadata, timeout=10):
            return reply

    calls = [
        (
            "sweep ledger",
            SWEEP_LEDGER_TOKEN,
            sweeps.CompleteSweep,
            swpb.CompleteSweepRequest(payment_id="pay_x", tx_hash="0x" + "0" * 64, amount="1", fee="0"),
        ),
        (
            "sweep ledger",
            SWEEP_LEDGER_TOKEN,
            sweeps.ClaimSweeps,
            swpb.ClaimSweepsRequest(chain_id=31337, worker_id="w", limit=1, lease_seconds=60),
        ),
        (
            "merchant directory",
            MERCHANT_DIRECTORY_TOKEN,
            directory.GetWebhookTarget,
            dpb.GetWebhookTargetRequest(merchant_id=merchant.merchant_id),
        ),
        (
            "merchant directory",
            MERCHANT_DIRECTORY_TOKEN,
            directory.AuthenticateApiKey,
            dpb.AuthenticateApiKeyRequest(api_key=merchant.api_key),
        ),
        ("address feed", ADDRESS_FEED_TOKEN, feed_call, fpb.WatchAddressesRequest(chain_id=31337)),
    ]
    tokens = [ADDRESS_FEED_TOKEN, SWEEP_LEDGER_TOKEN, MERCHANT_DIRECTORY_TOKEN, ADMIN_TOKEN]
    for what, own, call, request in calls:
        for token in tokens:
            if token == own:
                continue
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(request, metadata=bearer(token))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (what, err.value.details())
            assert f"wrong {what} token" in err.value.details()
            assert reason_of(err.value) == "SERVICE_TOKEN_WRONG"
    # Each with its own token gets past the door (an answer, or a domain error that is not about credentials).
    target = await directory.GetWebhookTarget(
        dpb.GetWebhookTargetRequest(merchant_id=merchant.merchant_id), metadata=bearer(MERCHANT_DIRECTORY_TOKEN)
    )
    assert target.merchant_active
    first = await feed_call(fpb.WatchAddressesRequest(chain_id=31337), bearer(ADDRESS_FEED_TOKEN))
    assert first is not None
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sweeps.CompleteSweep(calls[0][3], metadata=bearer(SWEEP_LEDGER_TOKEN))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unknown_api_key_and_disabled_merchant_carry_reasons(ledger_channel, merchant):
    from services.common.grpc_client import reason_of

    directory = dgrpc.MerchantDirectoryServiceStub(ledger_channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await directory.AuthenticateApiKey(
            dpb.AuthenticateApiKeyRequest(api_key="pmk_nobody"), metadata=bearer(MERCHANT_DIRECTORY_TOKEN)
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and reason_of(err.value) == "API_KEY_UNKNOWN"
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    await admin.DisableMerchant(
        apb.DisableMerchantRequest(merchant_id=merchant.merchant_id), metadata=bearer(ADMIN_TOKEN)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await merchant.payments.ListPayments(spb.ListPaymentsRequest(), metadata=merchant.auth)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and reason_of(err.value) == "MERCHANT_DISABLED"


async def test_create_merchant_validation(ledger_channel):
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    xpub, _ = fresh_xpub()
    cases = [
        (apb.CreateMerchantRequest(name="", xpub=xpub), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (apb.CreateMerchantRequest(name="a", xpub="xprv9s21ZrQH143K..."), grpc.StatusCode.INVALID_ARGUMENT, "PRIVATE"),
        (apb.CreateMerchantRequest(name="a", xpub="garbage"), grpc.StatusCode.INVALID_ARGUMENT, "xpub"),
        (
            apb.CreateMerchantRequest(name="a", xpub=xpub, derivation_path="m/x"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "derivation_path",
        ),
        (
            apb.CreateMerchantRequest(name="a", xpub=xpub, webhook_url="ftp://x"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "webhook_url",
        ),
        (
            apb.CreateMerchantRequest(name="a", xpub=xpub, treasuries=[apb.Treasury(chain_id=31337, address="0x12")]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "treasury.address",
        ),
        (
            apb.CreateMerchantRequest(name="a", xpub=xpub, treasuries=[apb.Treasury(chain_id=77, address=TREASURY)]),
            grpc.StatusCode.NOT_FOUND,
            "chain 77",
        ),
    ]
    for request, code, message in cases:
        await expect(code, message, admin.CreateMerchant, request)
    reply = await admin.CreateMerchant(apb.CreateMerchantRequest(name="ok", xpub=xpub), metadata=bearer(ADMIN_TOKEN))
    assert reply.api_key.startswith("pmk_") and reply.webhook_secret.startswith("whsec_")
    await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        "already used by merchant",
        admin.CreateMerchant,
        apb.CreateMerchantRequest(name="copy", xpub=xpub),
    )


async def test_rotate_disable_enable_and_settings(ledger_channel, merchant):
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    md = bearer(ADMIN_TOKEN)
    await merchant.create(amount="1")
    rotated = await admin.RotateApiKey(apb.RotateApiKeyRequest(merchant_id=merchant.merchant_id), metadata=md)
    old_key, merchant.api_key = merchant.api_key, rotated.api_key
    assert (await merchant.payments.ListPayments(spb.ListPaymentsRequest(), metadata=merchant.auth)).payments

    async def old_key_refused():
        try:
            await merchant.payments.ListPayments(spb.ListPaymentsRequest(), metadata=bearer(old_key))
        except grpc.aio.AioRpcError as err:
            return err.code() == grpc.StatusCode.UNAUTHENTICATED
        return False

    await eventually(old_key_refused, timeout=5)
    await admin.DisableMerchant(apb.DisableMerchantRequest(merchant_id=merchant.merchant_id), metadata=md)
    await expect(
        grpc.StatusCode.PERMISSION_DENIED,
        "disabled",
        merchant.payments.CreatePayment,
        spb.CreatePaymentRequest(chain_id=31337, asset="ETH", amount="1"),
        metadata=merchant.auth,
    )
    await admin.EnableMerchant(apb.EnableMerchantRequest(merchant_id=merchant.merchant_id), metadata=md)
    await merchant.create(amount="2")
    hook = await admin.SetWebhook(
        apb.SetWebhookRequest(merchant_id=merchant.merchant_id, webhook_url="https://shop.example/hook"), metadata=md
    )
    assert hook.webhook_secret.startswith("whsec_")
    treasury = await admin.SetTreasury(
        apb.SetTreasuryRequest(
            merchant_id=merchant.merchant_id, treasury=apb.Treasury(chain_id=31337, address=TREASURY.lower())
        ),
        metadata=md,
    )
    assert [(t.chain_id, t.address) for t in treasury.merchant.treasuries] == [(31337, TREASURY)]
    directory = dgrpc.MerchantDirectoryServiceStub(ledger_channel)
    target = await directory.GetWebhookTarget(
        dpb.GetWebhookTargetRequest(merchant_id=merchant.merchant_id), metadata=bearer(MERCHANT_DIRECTORY_TOKEN)
    )
    assert target.webhook_url == "https://shop.example/hook" and target.webhook_secret == hook.webhook_secret
    kept = await admin.SetWebhook(
        apb.SetWebhookRequest(
            merchant_id=merchant.merchant_id, keep_secret=True, webhook_url="https://shop.example/hook2"
        ),
        metadata=md,
    )
    assert kept.webhook_secret == hook.webhook_secret and kept.merchant.webhook_url == "https://shop.example/hook2"
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        "not both",
        admin.SetWebhook,
        apb.SetWebhookRequest(merchant_id=merchant.merchant_id, keep_secret=True, webhook_secret="s" * 20),
    )
    looked_up = await admin.LookupPayment(
        apb.LookupPaymentRequest(payment_id=(await merchant.create(amount="3")).payment_id), metadata=md
    )
    assert looked_up.payment.merchant_id == merchant.merchant_id and looked_up.payment.amount_due == "3"
    who = await directory.AuthenticateApiKey(
        dpb.AuthenticateApiKeyRequest(api_key=merchant.api_key), metadata=bearer(MERCHANT_DIRECTORY_TOKEN)
    )
    assert who.merchant_id == merchant.merchant_id and who.active
    await expect(
        grpc.StatusCode.NOT_FOUND, "not found", admin.GetMerchant, apb.GetMerchantRequest(merchant_id="mch_nope")
    )
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        "treasury is required",
        admin.SetTreasury,
        apb.SetTreasuryRequest(merchant_id=merchant.merchant_id),
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://exa mple.com/", "space or control character"),
        ("https://example.com:99999/", "port is not a number from 1 to 65535"),
        ("https://example.com/\r\nX-Injected: 1", "control character (U+000D)"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://metadata.google.internal/", "cloud metadata service"),
    ],
)
async def test_set_webhook_refuses_urls_that_can_never_be_delivered(ledger_channel, merchant, url, reason):
    """The merchant hears about it when setting it, not as silent dead letters; nothing is stored."""
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    md = bearer(ADMIN_TOKEN)
    before = (await admin.GetMerchant(apb.GetMerchantRequest(merchant_id=merchant.merchant_id), metadata=md)).merchant
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        admin.SetWebhook,
        apb.SetWebhookRequest(merchant_id=merchant.merchant_id, webhook_url=url),
    )
    xpub, _ = fresh_xpub()
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        reason,
        admin.CreateMerchant,
        apb.CreateMerchantRequest(name="hooked", xpub=xpub, webhook_url=url),
    )
    after = (await admin.GetMerchant(apb.GetMerchantRequest(merchant_id=merchant.merchant_id), metadata=md)).merchant
    assert after == before


async def _watch_ends_with(merchant, payment_id: str, key: str, change) -> grpc.aio.AioRpcError:
    """Open WatchPayment, wait for its first message, apply `change`, and return how the stream ended."""
    stream = merchant.payments.WatchPayment(
        spb.WatchPaymentRequest(payment_id=payment_id), metadata=bearer(key), timeout=30
    )
    first = await stream.read()
    assert first.payment.payment_id == payment_id
    await change()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        while True:
            message = await stream.read()
            assert message is not grpc.aio.EOF, "the stream ended without an error"
    return err.value


async def test_watch_payment_ends_when_the_merchant_is_disabled_or_its_key_rotated(ledger_channel, merchant):
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    md = bearer(ADMIN_TOKEN)
    payment = await merchant.create(amount="1")

    async def disable():
        await admin.DisableMerchant(apb.DisableMerchantRequest(merchant_id=merchant.merchant_id), metadata=md)

    err = await _watch_ends_with(merchant, payment.payment_id, merchant.api_key, disable)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "disabled" in err.details()
    await admin.EnableMerchant(apb.EnableMerchantRequest(merchant_id=merchant.merchant_id), metadata=md)

    async def rotate():
        await admin.RotateApiKey(apb.RotateApiKeyRequest(merchant_id=merchant.merchant_id), metadata=md)

    err = await _watch_ends_with(merchant, payment.payment_id, merchant.api_key, rotate)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked at" in err.details()  # rotated: revoked now


async def test_page_tokens_are_bound_to_the_method_and_the_caller(ledger_channel, merchant, other_merchant):
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    for _ in range(3):
        await merchant.create(amount="1")
        await other_merchant.create(amount="1")
    merchants = await admin.ListMerchants(apb.ListMerchantsRequest(page_size=1), metadata=bearer(ADMIN_TOKEN))
    mine = await merchant.payments.ListPayments(spb.ListPaymentsRequest(page_size=1), metadata=merchant.auth)
    assert merchants.next_page_token and mine.next_page_token
    # A genuine token, used for another listing, by another caller, or with other filters.
    for who, token in [(merchant, merchants.next_page_token), (other_merchant, mine.next_page_token)]:
        await expect(
            grpc.StatusCode.INVALID_ARGUMENT,
            "not one this API returned",
            who.payments.ListPayments,
            spb.ListPaymentsRequest(page_token=token),
            metadata=who.auth,
        )
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        "different filters",
        merchant.payments.ListPayments,
        spb.ListPaymentsRequest(page_token=mine.next_page_token, chain_id=31337),
        metadata=merchant.auth,
    )
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        "not one this API returned",
        admin.ListMerchants,
        apb.ListMerchantsRequest(page_token=mine.next_page_token),
    )
    # And the genuine use still pages on.
    page2 = await merchant.payments.ListPayments(
        spb.ListPaymentsRequest(page_size=1, page_token=mine.next_page_token), metadata=merchant.auth
    )
    assert page2.payments and page2.payments[0].payment_id != mine.payments[0].payment_id
