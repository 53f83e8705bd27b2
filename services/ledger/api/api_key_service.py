"""ApiKeyService: a merchant's own API keys (a key with the keys scope), or any
merchant's for the operator (admin token). Converts and calls api_keys.py."""

from __future__ import annotations

from paymesh.ledger.v1 import api_key_service_pb2 as kpb
from paymesh.ledger.v1 import api_key_service_pb2_grpc as kgrpc

from services.common.errors import InvalidArgument
from services.common.grpc_server import bearer_token
from services.ledger.api.convert import SCOPE_FROM_PB, api_key_to_pb, from_ts
from services.ledger.api_keys import ApiKeysService
from services.ledger.authentication import Authenticator, MerchantAccess


class ApiKeyServicer(kgrpc.ApiKeyServiceServicer):
    def __init__(self, keys: ApiKeysService, auth: Authenticator, admin_token: str) -> None:
        self._keys = keys
        self._auth = auth
        self._admin = admin_token

    async def _caller(self, context) -> MerchantAccess | None:
        """None for the operator's admin token; else the merchant key (with the keys scope)."""
        return await self._auth.operator_or_merchant(bearer_token(context), self._admin)

    async def CreateApiKey(self, request: kpb.CreateApiKeyRequest, context) -> kpb.CreateApiKeyResponse:
        caller = await self._caller(context)
        scopes = []
        for i, value in enumerate(request.scopes):
            if value not in SCOPE_FROM_PB:
                raise InvalidArgument(f"scopes[{i}] is {value}, not an ApiKeyScope that can be granted")
            scopes.append(SCOPE_FROM_PB[value])
        key, secret = await self._keys.create(
            caller,
            merchant_id=request.merchant_id,
            name=request.name,
            scopes=scopes,
            expires_at=from_ts(request.expires_at) if request.HasField("expires_at") else None,
        )
        return kpb.CreateApiKeyResponse(api_key=api_key_to_pb(key), secret=secret)

    async def ListApiKeys(self, request: kpb.ListApiKeysRequest, context) -> kpb.ListApiKeysResponse:
        rows = await self._keys.list(await self._caller(context), request.merchant_id)
        return kpb.ListApiKeysResponse(api_keys=[api_key_to_pb(r) for r in rows])

    async def RevokeApiKey(self, request: kpb.RevokeApiKeyRequest, context) -> kpb.RevokeApiKeyResponse:
        key = await self._keys.revoke(
            await self._caller(context),
            request.key_id,
            from_ts(request.revoke_at) if request.HasField("revoke_at") else None,
        )
        return kpb.RevokeApiKeyResponse(api_key=api_key_to_pb(key))
