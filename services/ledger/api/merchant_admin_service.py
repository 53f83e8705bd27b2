"""MerchantAdminService, the operator's API (PAYMESH_ADMIN_TOKEN): merchants and
their settings (merchants.py), and LookupPayment, any merchant's payment by id."""

from __future__ import annotations

from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc

from services.common.errors import InvalidArgument
from services.common.grpc_server import check_token
from services.ledger.api.convert import (
    config_change_to_pb,
    merchant_to_pb,
    payment_to_pb,
    payout_to_pb,
    policy_from_pb,
)
from services.ledger.merchants import MerchantsService
from services.ledger.payments import PaymentsService
from services.ledger.payouts import PayoutsService


class MerchantAdminServicer(agrpc.MerchantAdminServiceServicer):
    def __init__(
        self, merchants: MerchantsService, payments: PaymentsService, admin_token: str, payouts: PayoutsService
    ) -> None:
        self._merchants = merchants
        self._payments = payments
        self._token = admin_token
        self._payouts = payouts

    def _check(self, context) -> None:
        check_token(context, self._token, "admin")

    async def CreateMerchant(self, request: apb.CreateMerchantRequest, context) -> apb.CreateMerchantResponse:
        self._check(context)
        merchant, api_key, secret = await self._merchants.create(
            name=request.name,
            xpub=request.xpub,
            derivation_path=request.derivation_path,
            webhook_url=request.webhook_url,
            treasuries=[(t.chain_id, t.address) for t in request.treasuries],
        )
        return apb.CreateMerchantResponse(merchant=merchant_to_pb(merchant), api_key=api_key, webhook_secret=secret)

    async def GetMerchant(self, request, context) -> apb.GetMerchantResponse:
        self._check(context)
        return apb.GetMerchantResponse(merchant=merchant_to_pb(await self._merchants.get(request.merchant_id)))

    async def ListMerchants(self, request, context) -> apb.ListMerchantsResponse:
        self._check(context)
        rows, token = await self._merchants.list(request.page_size, request.page_token)
        return apb.ListMerchantsResponse(merchants=[merchant_to_pb(m) for m in rows], next_page_token=token)

    async def DisableMerchant(self, request, context) -> apb.DisableMerchantResponse:
        self._check(context)
        return apb.DisableMerchantResponse(
            merchant=merchant_to_pb(await self._merchants.set_status(request.merchant_id, False))
        )

    async def EnableMerchant(self, request, context) -> apb.EnableMerchantResponse:
        self._check(context)
        return apb.EnableMerchantResponse(
            merchant=merchant_to_pb(await self._merchants.set_status(request.merchant_id, True))
        )

    async def RotateApiKey(self, request, context) -> apb.RotateApiKeyResponse:
        self._check(context)
        merchant, key = await self._merchants.rotate_key(request.merchant_id)
        return apb.RotateApiKeyResponse(merchant=merchant_to_pb(merchant), api_key=key)

    async def SetWebhook(self, request, context) -> apb.SetWebhookResponse:
        self._check(context)
        merchant, secret = await self._merchants.set_webhook(
            request.merchant_id, request.webhook_url, request.webhook_secret, keep_secret=request.keep_secret
        )
        return apb.SetWebhookResponse(merchant=merchant_to_pb(merchant), webhook_secret=secret)

    async def SetXpub(self, request, context) -> apb.SetXpubResponse:
        self._check(context)
        merchant, change = await self._merchants.set_xpub(request.merchant_id, request.xpub, request.derivation_path)
        return apb.SetXpubResponse(
            merchant=merchant_to_pb(merchant), pending_change=config_change_to_pb(change) if change else None
        )

    async def SetTreasury(self, request, context) -> apb.SetTreasuryResponse:
        self._check(context)
        if not request.HasField("treasury"):
            raise InvalidArgument("treasury is required (chain_id and address)")
        merchant, change = await self._merchants.set_treasury(
            request.merchant_id, request.treasury.chain_id, request.treasury.address
        )
        return apb.SetTreasuryResponse(
            merchant=merchant_to_pb(merchant), pending_change=config_change_to_pb(change) if change else None
        )

    async def LookupPayment(self, request, context) -> apb.LookupPaymentResponse:
        self._check(context)
        return apb.LookupPaymentResponse(payment=payment_to_pb(await self._payments.get(None, request.payment_id)))

    async def SetPaymentPolicy(self, request, context) -> apb.SetPaymentPolicyResponse:
        self._check(context)
        merchant = await self._merchants.set_payment_policy(
            request.merchant_id, policy_from_pb(request.policy, "policy")
        )
        return apb.SetPaymentPolicyResponse(merchant=merchant_to_pb(merchant))

    async def SetPayoutPolicy(self, request, context) -> apb.SetPayoutPolicyResponse:
        self._check(context)
        policy = await self._payouts.set_policy(
            request.merchant_id,
            [(a.chain_id, a.asset, a.approval_above, a.daily_limit) for a in request.limits],
        )
        return apb.SetPayoutPolicyResponse(
            limits=[
                apb.AssetPayoutLimits(
                    chain_id=a.chain_id,
                    asset=a.asset,
                    approval_above="" if a.approval_above is None else str(a.approval_above),
                    daily_limit="" if a.daily_limit is None else str(a.daily_limit),
                )
                for a in policy.limits
            ]
        )

    async def ApprovePayout(self, request, context) -> apb.ApprovePayoutResponse:
        self._check(context)
        return apb.ApprovePayoutResponse(payout=payout_to_pb(await self._payouts.approve(request.payout_id)))
