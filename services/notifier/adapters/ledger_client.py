"""The notifier's view of the ledger: who a merchant is and where its webhooks go.

The notifier keeps no merchant table. It asks the ledger's MerchantDirectoryService (with
PAYMESH_MERCHANT_DIRECTORY_TOKEN) for a merchant's webhook endpoints and to authenticate a
merchant API key, and caches both briefly. Callers depend on the two small
interfaces below, so tests and other ledgers can stand in.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

import grpc
from paymesh.ledger.v1 import api_key_service_pb2 as kpb
from paymesh.ledger.v1 import merchant_directory_service_pb2 as dpb
from paymesh.ledger.v1 import merchant_directory_service_pb2_grpc as dgrpc

from services.common.errors import DomainError, InvalidArgument, NotFound, Reason, Unauthenticated, Unavailable
from services.common.grpc_client import ServiceClient
from services.notifier.domain.records import Endpoint, MerchantEndpoints

K = TypeVar("K")
V = TypeVar("V")


class TargetSource(Protocol):
    async def endpoints(self, merchant_id: str) -> MerchantEndpoints:
        """The merchant's status and webhook endpoints with their secrets; NotFound / Unavailable."""

    def cached_endpoints(self, merchant_id: str) -> MerchantEndpoints | None:
        """The same if the answer is cached and fresh (no call); None otherwise."""


class ApiKeyAuthenticator(Protocol):
    async def authenticate(self, api_key: str) -> tuple[str, bool, frozenset[str]]:
        """(merchant id, active, scope names such as "API_KEY_SCOPE_WEBHOOKS_MANAGE") of a
        merchant API key; Unauthenticated / Unavailable."""


class TtlCache(Generic[K, V]):
    """A small TTL cache whose concurrent misses for one key share one lookup."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._values: dict[K, tuple[float, V]] = {}
        self._pending: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        hit = self._values.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters may be none
            raise
        finally:
            self._pending.pop(key, None)
        if self._ttl > 0:
            if len(self._values) >= self._max:
                self._values.clear()
            self._values[key] = (time.monotonic() + self._ttl, value)
        future.set_result(value)
        return value

    def peek(self, key: K) -> V | None:
        """The value if cached and fresh, without loading it."""
        hit = self._values.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def forget(self, key: K) -> None:
        self._values.pop(key, None)


def _unavailable(err: DomainError) -> Unavailable:
    """Any failure but a clear answer is the ledger being unusable for now: the caller
    retries (a delivery waits, an API call gets UNAVAILABLE), never a wrong verdict."""
    if err.reason in (Reason.SERVICE_TOKEN_WRONG, Reason.API_DISABLED):
        return Unavailable(f"{err.message}; the operator must set the same token on both", reason=err.reason)
    return err if isinstance(err, Unavailable) else Unavailable(err.message, reason=err.reason)


class LedgerClient:
    """TargetSource and ApiKeyAuthenticator over the ledger's MerchantDirectoryService."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        token: str,
        *,
        timeout: float = 5.0,
        target_ttl: float = 5.0,
        auth_ttl: float = 1.0,
    ) -> None:
        self._ledger = ServiceClient(
            dgrpc.MerchantDirectoryServiceStub(channel),
            peer="ledger",
            token=token,
            timeout=timeout,
            token_variable="PAYMESH_MERCHANT_DIRECTORY_TOKEN",
        )
        self._targets: TtlCache[str, MerchantEndpoints] = TtlCache(target_ttl)
        self._keys: TtlCache[str, tuple[str, bool]] = TtlCache(auth_ttl)

    async def endpoints(self, merchant_id: str) -> MerchantEndpoints:
        async def load() -> MerchantEndpoints:
            try:
                reply = await self._ledger.call(
                    "looking up webhook endpoints",
                    "GetWebhookEndpoints",
                    dpb.GetWebhookEndpointsRequest(merchant_id=merchant_id),
                )
            except (NotFound, InvalidArgument):
                raise NotFound(f"merchant {merchant_id} is not known to the ledger") from None
            except DomainError as err:
                raise _unavailable(err) from None
            return MerchantEndpoints(
                active=reply.merchant_active,
                endpoints=tuple(
                    Endpoint(
                        endpoint_id=e.endpoint_id,
                        url=e.url,
                        event_types=tuple(e.event_types),
                        enabled=e.enabled,
                        secrets=tuple(e.secrets),
                    )
                    for e in reply.endpoints
                ),
            )

        return await self._targets.get(merchant_id, load)

    def cached_endpoints(self, merchant_id: str) -> MerchantEndpoints | None:
        return self._targets.peek(merchant_id)

    async def authenticate(self, api_key: str) -> tuple[str, bool, frozenset[str]]:
        if not api_key or len(api_key) > 256:
            raise Unauthenticated("API key not recognised; check the key or ask the operator to rotate it")

        async def load() -> tuple[str, bool, frozenset[str]]:
            try:
                reply = await self._ledger.call(
                    "checking an API key", "AuthenticateApiKey", dpb.AuthenticateApiKeyRequest(api_key=api_key)
                )
            except DomainError as err:
                if err.reason == Reason.API_KEY_UNKNOWN:
                    raise Unauthenticated(
                        "API key not recognised; check the key or ask the operator to rotate it",
                        reason=Reason.API_KEY_UNKNOWN,
                    ) from None
                raise _unavailable(err) from None
            return reply.merchant_id, reply.active, frozenset(kpb.ApiKeyScope.Name(s) for s in reply.scopes)

        return await self._keys.get(hashlib.sha256(api_key.encode()).hexdigest(), load)
