"""Who is calling NotifierService: `authorization: Bearer <token>` with the
operator's admin token (every merchant) or a merchant API key (checked by the
ledger; that merchant's deliveries only). A disabled merchant's key is refused."""

from __future__ import annotations

import hmac

import grpc

from services.common.errors import PermissionDenied
from services.common.grpc_server import bearer_token
from services.notifier.adapters.ledger_client import ApiKeyAuthenticator
from services.notifier.deliveries import Caller


class CallerResolver:
    """Admin token -> operator; anything else is asked of the ledger as an API key."""

    def __init__(self, admin_token: str, keys: ApiKeyAuthenticator) -> None:
        self._admin = admin_token
        self._keys = keys

    async def resolve(self, context: grpc.aio.ServicerContext) -> Caller:
        token = bearer_token(context)
        if self._admin and hmac.compare_digest(token.encode(), self._admin.encode()):
            return Caller(merchant_id=None)
        merchant_id, active = await self._keys.authenticate(token)
        if not active:
            raise PermissionDenied("this merchant is disabled; contact the operator")
        return Caller(merchant_id=merchant_id)
