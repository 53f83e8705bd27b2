"""Who is calling NotifierService: `authorization: Bearer <token>` with the
operator's admin token (every merchant) or a merchant API key (checked by the
ledger; that merchant's deliveries only). A disabled merchant's key is refused, and
so is a key without the webhooks scope (every NotifierService RPC needs
API_KEY_SCOPE_WEBHOOKS_MANAGE; the ledger's table is services/ledger/domain/scopes.py).
A ledger too old to report scopes reports none; a key always has at least one, so
then the key is taken as it was before scopes (every scope)."""

from __future__ import annotations

import hmac

import grpc

from services.common.errors import PermissionDenied, Reason
from services.common.grpc_server import bearer_token
from services.notifier.adapters.ledger_client import ApiKeyAuthenticator
from services.notifier.deliveries import Caller

WEBHOOKS_SCOPE = "API_KEY_SCOPE_WEBHOOKS_MANAGE"


class CallerResolver:
    """Admin token -> operator; anything else is asked of the ledger as an API key."""

    def __init__(self, admin_token: str, keys: ApiKeyAuthenticator) -> None:
        self._admin = admin_token
        self._keys = keys

    async def resolve(self, context: grpc.aio.ServicerContext) -> Caller:
        token = bearer_token(context)
        if self._admin and hmac.compare_digest(token.encode(), self._admin.encode()):
            return Caller(merchant_id=None)
        merchant_id, active, scopes = await self._keys.authenticate(token)
        if not active:
            raise PermissionDenied("this merchant is disabled; contact the operator")
        if scopes and WEBHOOKS_SCOPE not in scopes:
            raise PermissionDenied(
                "this API key lacks the scope webhooks:manage that the notifier's API needs",
                reason=Reason.SCOPE_MISSING,
            )
        return Caller(merchant_id=merchant_id)
