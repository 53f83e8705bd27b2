"""MerchantDirectoryService, the notifier's view of merchants
(PAYMESH_MERCHANT_DIRECTORY_TOKEN): webhook targets and endpoints, API key lookups."""

from __future__ import annotations

from paymesh.ledger.v1 import merchant_directory_service_pb2 as dpb
from paymesh.ledger.v1 import merchant_directory_service_pb2_grpc as dgrpc

from services.ledger.api.caller_check import CallerCheck
from services.ledger.api.convert import SCOPE_TO_PB
from services.ledger.authentication import Authenticator
from services.ledger.merchants import MerchantsService
from services.ledger.webhook_endpoints import WebhookEndpointsService


class MerchantDirectoryServicer(dgrpc.MerchantDirectoryServiceServicer, CallerCheck):
    """The notifier's view of merchants: webhook targets, API keys (PAYMESH_MERCHANT_DIRECTORY_TOKEN)."""

    def __init__(
        self, merchants: MerchantsService, auth: Authenticator, token: str, endpoints: WebhookEndpointsService
    ) -> None:
        CallerCheck.__init__(self, token, "merchant directory", lambda _: True)
        self._merchants = merchants
        self._auth = auth
        self._endpoints = endpoints

    async def GetWebhookTarget(self, request, context) -> dpb.GetWebhookTargetResponse:
        self._check(context)
        merchant = await self._merchants.get(request.merchant_id)
        return dpb.GetWebhookTargetResponse(
            webhook_url=merchant.webhook_url,
            webhook_secret=merchant.webhook_secret,
            merchant_active=merchant.status == "active",
        )

    async def AuthenticateApiKey(self, request, context) -> dpb.AuthenticateApiKeyResponse:
        self._check(context)
        access = await self._auth.lookup(request.api_key)
        return dpb.AuthenticateApiKeyResponse(
            merchant_id=access.merchant_id, active=access.active, scopes=[SCOPE_TO_PB[s] for s in access.scopes]
        )

    async def GetWebhookEndpoints(self, request, context) -> dpb.GetWebhookEndpointsResponse:
        self._check(context)
        active, targets = await self._endpoints.targets(request.merchant_id)
        return dpb.GetWebhookEndpointsResponse(
            merchant_active=active,
            endpoints=[
                dpb.WebhookEndpointTarget(
                    endpoint_id=t.endpoint_id,
                    url=t.url,
                    event_types=t.event_types,
                    enabled=t.enabled,
                    secrets=t.secrets,
                )
                for t in targets
            ],
        )
