"""Who is calling, and may they: an API key -> its merchant and scopes, with a short
cache; the scope the RPC being served needs (domain/scopes.py, the one table) is
checked here, for every merchant RPC. The hash of the key is looked up
(domain/keys.py), never the key itself.

A key works from its creation until its expiry or revocation time, whichever comes
first (revocation may be set ahead: the overlap of a rotation). Those times are
checked on every call against the cached record, so a key set to expire stops at
that second; a change made by the API (a new revocation) reaches every replica
within the cache time (PAYMESH_API_KEY_CACHE_SECONDS), this one at once.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import InvalidArgument, NotFound, PermissionDenied, Reason, Unauthenticated
from services.common.grpc_server import current_rpc
from services.ledger.adapters import repository as repo
from services.ledger.domain import keys
from services.ledger.domain.audit import OPERATOR
from services.ledger.domain.policy import Policy
from services.ledger.domain.scopes import Scope, parse_scopes, required_scope

UNKNOWN_KEY = "API key not recognised; check the key or ask the operator to rotate it"


@dataclass(frozen=True)
class MerchantAccess:
    """The calling merchant, as of the cache: its id, whether it is active, its payment
    policy; the key's id, scopes and the times it stops working."""

    merchant_id: str
    active: bool
    payment_policy: Policy
    key_id: str = ""
    scopes: frozenset[Scope] = frozenset()
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


def owned_merchant(caller: MerchantAccess | None, merchant_id: str) -> str:
    """The merchant a call about a merchant's configuration means: the caller's own
    (`merchant_id` empty or the same; another merchant's is NOT_FOUND, as if unknown),
    or any named one for the operator (`caller` None; merchant_id required)."""
    if caller is None:
        if not merchant_id:
            raise InvalidArgument("merchant_id is required with the admin token")
        return merchant_id
    if merchant_id and merchant_id != caller.merchant_id:
        raise NotFound(f"merchant {merchant_id[:64]} not found")
    return caller.merchant_id


def actor(caller: MerchantAccess | None) -> str:
    """Who the audit log names for a change: the key's id, or "operator"."""
    return caller.key_id if caller is not None else OPERATOR


class Authenticator:
    """API key -> merchant id (and payment policy, scopes), cached briefly (a disabled
    merchant, a revoked key or a new policy takes effect within `ttl` seconds on every
    replica)."""

    def __init__(self, engine: AsyncEngine, ttl: float) -> None:
        self._engine = engine
        self.ttl = ttl
        self._cache: dict[str, tuple[float, MerchantAccess]] = {}

    async def merchant_for(self, api_key: str) -> str:
        return (await self.active_merchant(api_key)).merchant_id

    async def active_merchant(self, api_key: str) -> MerchantAccess:
        """The caller of a merchant RPC: an active merchant's key that has the scope the
        RPC being served needs (PERMISSION_DENIED naming the scope otherwise)."""
        access = await self.access(api_key)
        if not access.active:
            raise PermissionDenied("this merchant is disabled; contact the operator", reason=Reason.MERCHANT_DISABLED)
        rpc = current_rpc()
        needed = required_scope(rpc)
        if needed is None:
            raise PermissionDenied(f"{rpc or 'this call'} takes no merchant API key", reason=Reason.SCOPE_MISSING)
        if needed not in access.scopes:
            raise PermissionDenied(
                f"this API key lacks the scope {needed.value} that {rpc.rsplit('/', 1)[-1]} needs; its scopes: "
                f"{', '.join(sorted(s.value for s in access.scopes)) or 'none'} (ApiKeyService.CreateApiKey issues "
                "a key with more)",
                reason=Reason.SCOPE_MISSING,
            )
        return access

    async def operator_or_merchant(self, token: str, admin_token: str) -> MerchantAccess | None:
        """None for the operator's admin token; else the merchant key, checked as
        active_merchant does (the services both may call: API keys, the audit log)."""
        if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
            return None
        return await self.active_merchant(token)

    async def lookup(self, api_key: str) -> MerchantAccess:
        """The merchant and scopes of an API key, for another service that checks the
        scope itself (the notifier); Unauthenticated if unknown, expired or revoked."""
        return await self.access(api_key)

    async def access(self, api_key: str) -> MerchantAccess:
        """The merchant of an API key; Unauthenticated if unknown, expired or revoked."""
        if not api_key or len(api_key) > 256:
            raise Unauthenticated(UNKNOWN_KEY, reason=Reason.API_KEY_UNKNOWN)
        digest = keys.hash_api_key(api_key)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit is None or hit[0] < now:
            async with self._engine.begin() as conn:
                found = await repo.api_keys.key_auth(conn, digest)
                if found is not None:
                    await repo.api_keys.touch(conn, found.id)  # last used, to within the cache time
            if found is None:
                self._cache.pop(digest, None)
                raise Unauthenticated(UNKNOWN_KEY, reason=Reason.API_KEY_UNKNOWN)
            access = MerchantAccess(
                merchant_id=found.merchant_id,
                active=found.status == "active",
                payment_policy=Policy.from_json(found.payment_policy),
                key_id=found.id,
                scopes=parse_scopes(found.scopes),
                expires_at=found.expires_at,
                revoked_at=found.revoked_at,
            )
            hit = (now + self.ttl, access)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = hit
        access = hit[1]
        wall = datetime.now(UTC)
        for stop, what in ((access.revoked_at, "revoked"), (access.expires_at, "expired")):
            if stop is not None and stop <= wall:
                raise Unauthenticated(
                    f"this API key was {what} at {stop.isoformat()}; use another key of the merchant",
                    reason=Reason.API_KEY_UNKNOWN,
                )
        return access

    def forget(self) -> None:
        self._cache.clear()
