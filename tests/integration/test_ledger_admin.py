"""Operator API (MerchantAdminService) and the internal API's credentials."""

from __future__ import annotations

import grpc
import pytest
from paymesh.ledger.v1 import ledger_internal_service_pb2 as ipb
from paymesh.ledger.v1 import ledger_internal_service_pb2_grpc as igrpc
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import payment_service_pb2 as spb

from tests.support.ledger import ADMIN_TOKEN, INTERNAL_TOKEN, bearer, eventually, fresh_xpub

pytestmark = pytest.mark.asyncio(loop_scope="session")
TREASURY = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"


async def expect(code, message, call, request, metadata=bearer(ADMIN_TOKEN)):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request, metadata=metadata)
    assert err.value.code() == code, err.value.details()
    assert message in err.value.details()


async def test_admin_credentials(ledger_channel):
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    await expect(grpc.StatusCode.UNAUTHENTICATED, "missing credentials", admin.ListMerchants,
                 apb.ListMerchantsRequest(), metadata=())
    await expect(grpc.StatusCode.UNAUTHENTICATED, "wrong admin token", admin.ListMerchants,
                 apb.ListMerchantsRequest(), metadata=bearer("nope"))
    internal = igrpc.LedgerInternalServiceStub(ledger_channel)
    await expect(grpc.StatusCode.UNAUTHENTICATED, "wrong internal token", internal.GetWebhookTarget,
                 ipb.GetWebhookTargetRequest(merchant_id="x"), metadata=bearer(ADMIN_TOKEN))


async def test_create_merchant_validation(ledger_channel):
    admin = agrpc.MerchantAdminServiceStub(ledger_channel)
    xpub, _ = fresh_xpub()
    cases = [
        (apb.CreateMerchantRequest(name="", xpub=xpub), grpc.StatusCode.INVALID_ARGUMENT, "name"),
        (apb.CreateMerchantRequest(name="a", xpub="xprv9s21ZrQH143K..."), grpc.StatusCode.INVALID_ARGUMENT, "PRIVATE"),
        (apb.CreateMerchantRequest(name="a", xpub="garbage"), grpc.StatusCode.INVALID_ARGUMENT, "xpub"),
        (apb.CreateMerchantRequest(name="a", xpub=xpub, derivation_path="m/x"), grpc.StatusCode.INVALID_ARGUMENT,
         "derivation_path"),
        (apb.CreateMerchantRequest(name="a", xpub=xpub, webhook_url="ftp://x"), grpc.StatusCode.INVALID_ARGUMENT,
         "webhook_url"),
        (apb.CreateMerchantRequest(name="a", xpub=xpub, treasuries=[apb.Treasury(chain_id=31337, address="0x12")]),
         grpc.StatusCode.INVALID_ARGUMENT, "treasury.address"),
        (apb.CreateMerchantRequest(name="a", xpub=xpub, treasuries=[apb.Treasury(chain_id=77, address=TREASURY)]),
         grpc.StatusCode.NOT_FOUND, "chain 77"),
    ]
    for request, code, message in cases:
        await expect(code, message, admin.CreateMerchant, request)
    reply = await admin.CreateMerchant(apb.CreateMerchantRequest(name="ok", xpub=xpub), metadata=bearer(ADMIN_TOKEN))
    assert reply.api_key.startswith("pmk_") and reply.webhook_secret.startswith("whsec_")
    await expect(grpc.StatusCode.ALREADY_EXISTS, "already used by merchant", admin.CreateMerchant,
                 apb.CreateMerchantRequest(name="copy", xpub=xpub))


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
    await expect(grpc.StatusCode.PERMISSION_DENIED, "disabled", merchant.payments.CreatePayment,
                 spb.CreatePaymentRequest(chain_id=31337, asset="ETH", amount="1"), metadata=merchant.auth)
    await admin.EnableMerchant(apb.EnableMerchantRequest(merchant_id=merchant.merchant_id), metadata=md)
    await merchant.create(amount="2")
    hook = await admin.SetWebhook(apb.SetWebhookRequest(merchant_id=merchant.merchant_id,
                                                        webhook_url="https://shop.example/hook"), metadata=md)
    assert hook.webhook_secret.startswith("whsec_")
    treasury = await admin.SetTreasury(apb.SetTreasuryRequest(merchant_id=merchant.merchant_id,
                                                              treasury=apb.Treasury(chain_id=31337, address=TREASURY.lower())),
                                       metadata=md)
    assert [(t.chain_id, t.address) for t in treasury.merchant.treasuries] == [(31337, TREASURY)]
    internal = igrpc.LedgerInternalServiceStub(ledger_channel)
    target = await internal.GetWebhookTarget(ipb.GetWebhookTargetRequest(merchant_id=merchant.merchant_id),
                                             metadata=bearer(INTERNAL_TOKEN))
    assert target.webhook_url == "https://shop.example/hook" and target.webhook_secret == hook.webhook_secret
    who = await internal.AuthenticateApiKey(ipb.AuthenticateApiKeyRequest(api_key=merchant.api_key),
                                            metadata=bearer(INTERNAL_TOKEN))
    assert who.merchant_id == merchant.merchant_id and who.active
    await expect(grpc.StatusCode.NOT_FOUND, "not found", admin.GetMerchant,
                 apb.GetMerchantRequest(merchant_id="mch_nope"))
    await expect(grpc.StatusCode.INVALID_ARGUMENT, "treasury is required", admin.SetTreasury,
                 apb.SetTreasuryRequest(merchant_id=merchant.merchant_id))
