"""PaymentLinkService, the merchants' reusable payment links (an API key per
merchant): create, get, deactivate. Checks the key, converts, calls
payment_links.py, converts back."""

from __future__ import annotations

import grpc
from paymesh.ledger.v1 import payment_link_service_pb2 as lpb
from paymesh.ledger.v1 import payment_link_service_pb2_grpc as lgrpc

from services.common.grpc_server import bearer_token
from services.ledger.api.convert import from_ts, link_to_pb
from services.ledger.authentication import Authenticator
from services.ledger.payment_links import PaymentLinksService


def _price(message, field: str) -> tuple[str, str] | None:
    if not message.HasField(field):
        return None
    money = getattr(message, field)
    return money.currency, money.amount


class PaymentLinkServicer(lgrpc.PaymentLinkServiceServicer):
    def __init__(self, links: PaymentLinksService, auth: Authenticator) -> None:
        self._links = links
        self._auth = auth

    async def _merchant(self, context: grpc.aio.ServicerContext) -> str:
        return await self._auth.merchant_for(bearer_token(context))

    async def CreatePaymentLink(self, request: lpb.CreatePaymentLinkRequest, context) -> lpb.CreatePaymentLinkResponse:
        caller = await self._auth.active_merchant(bearer_token(context))
        link, created = await self._links.create(
            caller.merchant_id,
            description=request.description,
            price=_price(request, "price"),
            min_price=_price(request, "min_price"),
            max_price=_price(request, "max_price"),
            options=[(o.chain_id, o.asset) for o in request.options],
            accept_all=request.accept_all_assets,
            accept_chain_ids=list(request.accept_chain_ids),
            expires_at=from_ts(request.expires_at) if request.HasField("expires_at") else None,
            max_uses=request.max_uses,
            return_url=request.return_url,
            idempotency_key=request.idempotency_key,
        )
        return lpb.CreatePaymentLinkResponse(link=link_to_pb(link), created=created)

    async def GetPaymentLink(self, request: lpb.GetPaymentLinkRequest, context) -> lpb.GetPaymentLinkResponse:
        link = await self._links.get(await self._merchant(context), request.link_id)
        return lpb.GetPaymentLinkResponse(link=link_to_pb(link))

    async def DeactivatePaymentLink(
        self, request: lpb.DeactivatePaymentLinkRequest, context
    ) -> lpb.DeactivatePaymentLinkResponse:
        link = await self._links.deactivate(await self._merchant(context), request.link_id)
        return lpb.DeactivatePaymentLinkResponse(link=link_to_pb(link))
