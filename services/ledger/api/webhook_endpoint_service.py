"""WebhookEndpointService: a merchant's own webhook endpoints (a key with the webhooks
scope), or any merchant's for the operator (admin token). Converts and calls
webhook_endpoints.py."""

from __future__ import annotations

from paymesh.ledger.v1 import webhook_endpoint_service_pb2 as wepb
from paymesh.ledger.v1 import webhook_endpoint_service_pb2_grpc as wegrpc

from services.common.grpc_server import bearer_token
from services.ledger.api.convert import webhook_endpoint_to_pb
from services.ledger.authentication import Authenticator, MerchantAccess
from services.ledger.webhook_endpoints import WebhookEndpointsService


class WebhookEndpointServicer(wegrpc.WebhookEndpointServiceServicer):
    def __init__(self, endpoints: WebhookEndpointsService, auth: Authenticator, admin_token: str) -> None:
        self._endpoints = endpoints
        self._auth = auth
        self._admin = admin_token

    async def _caller(self, context) -> MerchantAccess | None:
        """None for the operator's admin token; else the merchant key (with the webhooks scope)."""
        return await self._auth.operator_or_merchant(bearer_token(context), self._admin)

    async def CreateWebhookEndpoint(self, request, context) -> wepb.CreateWebhookEndpointResponse:
        row, secret = await self._endpoints.create(
            await self._caller(context),
            merchant_id=request.merchant_id,
            url=request.url,
            description=request.description,
            event_types=list(request.event_types),
            enabled=not request.disabled,
        )
        return wepb.CreateWebhookEndpointResponse(endpoint=webhook_endpoint_to_pb(row), secret=secret)

    async def GetWebhookEndpoint(self, request, context) -> wepb.GetWebhookEndpointResponse:
        row = await self._endpoints.get(await self._caller(context), request.endpoint_id)
        return wepb.GetWebhookEndpointResponse(endpoint=webhook_endpoint_to_pb(row))

    async def ListWebhookEndpoints(self, request, context) -> wepb.ListWebhookEndpointsResponse:
        rows = await self._endpoints.list(await self._caller(context), request.merchant_id)
        return wepb.ListWebhookEndpointsResponse(endpoints=[webhook_endpoint_to_pb(r) for r in rows])

    async def UpdateWebhookEndpoint(self, request, context) -> wepb.UpdateWebhookEndpointResponse:
        row = await self._endpoints.update(
            await self._caller(context),
            request.endpoint_id,
            url=request.url if request.HasField("url") else None,
            description=request.description if request.HasField("description") else None,
            event_types=list(request.event_types.event_types) if request.HasField("event_types") else None,
            enabled=request.enabled if request.HasField("enabled") else None,
        )
        return wepb.UpdateWebhookEndpointResponse(endpoint=webhook_endpoint_to_pb(row))

    async def DeleteWebhookEndpoint(self, request, context) -> wepb.DeleteWebhookEndpointResponse:
        row = await self._endpoints.delete(await self._caller(context), request.endpoint_id)
        return wepb.DeleteWebhookEndpointResponse(endpoint=webhook_endpoint_to_pb(row))

    async def RollWebhookEndpointSecret(self, request, context) -> wepb.RollWebhookEndpointSecretResponse:
        row, secret = await self._endpoints.roll_secret(
            await self._caller(context), request.endpoint_id, request.overlap_seconds
        )
        return wepb.RollWebhookEndpointSecretResponse(endpoint=webhook_endpoint_to_pb(row), secret=secret)
