"""The notifier's view of the ledger: who a merchant is and where its webhooks go.

The notifier keeps no merchant table. It asks the ledger's internal API (with
the internal token) for a merchant's webhook target and to authenticate a
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
from paymesh.ledger.v1 import ledger_internal_service_pb2 as ipb
from paymesh.ledger.v1 import ledger_internal_service_pb2_grpc as igrpc

from services.common.errors import NotFound, Unauthenticated, Unavailable
from services.notifier.domain.records import WebhookTarget

K = TypeVar("K")
V = TypeVar("V")


class TargetSource(Protocol):
    async def webhook_target(self, merchant_id: str) -> WebhookTarget:
        """The merchant's webhook URL, secret and status; NotFound / Unavailable."""


class ApiKeyAuthenticator(Protocol):
    async def authenticate(self, api_key: str) -> tuple[str, bool]:
        """(merchant id, active) of a merchant API key; Unauthenticated / Unavailable."""


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

    def forget(self, key: K) -> None:
        self._values.pop(key, None)


def _unavailable(what: str, err: grpc.aio.AioRpcError) -> Unavailable:
    code = err.code()
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return Unavailable(
            f"the ledger refused the notifier's internal token ({code.name}) while {what}; "
            "the operator must set the same PAYMESH_INTERNAL_TOKEN on both"
        )
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return Unavailable(f"the ledger does not implement the call needed for {what}; upgrade the ledger")
    return Unavailable(f"the ledger is unreachable while {what} ({code.name}); retry shortly")


class LedgerClient:
    """TargetSource and ApiKeyAuthenticator over LedgerInternalService."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        internal_token: str,
        *,
        timeout: float = 5.0,
        target_ttl: float = 5.0,
        auth_ttl: float = 1.0,
    ) -> None:
        self._stub = igrpc.LedgerInternalServiceStub(channel)
        self._metadata = (("authorization", f"Bearer {internal_token}"),)
        self._timeout = timeout
        self._targets: TtlCache[str, WebhookTarget] = TtlCache(target_ttl)
        self._keys: TtlCache[str, tuple[str, bool]] = TtlCache(auth_ttl)

    async def webhook_target(self, merchant_id: str) -> WebhookTarget:
        async def load() -> WebhookTarget:
            try:
                reply = await self._stub.GetWebhookTarget(
                    ipb.GetWebhookTargetRequest(merchant_id=merchant_id),
                    metadata=self._metadata,
                    timeout=self._timeout,
                )
            except grpc.aio.AioRpcError as err:
                if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    raise NotFound(f"merchant {merchant_id} is not known to the ledger") from None
                raise _unavailable("looking up a webhook target", err) from None
            return WebhookTarget(
                url=reply.webhook_url, secret=reply.webhook_secret, active=reply.merchant_active
            )

        return await self._targets.get(merchant_id, load)

    async def authenticate(self, api_key: str) -> tuple[str, bool]:
        if not api_key or len(api_key) > 256:
            raise Unauthenticated("API key not recognised; check the key or ask the operator to rotate it")

        async def load() -> tuple[str, bool]:
            try:
                reply = await self._stub.AuthenticateApiKey(
                    ipb.AuthenticateApiKeyRequest(api_key=api_key),
                    metadata=self._metadata,
                    timeout=self._timeout,
                )
            except grpc.aio.AioRpcError as err:
                if err.code() is grpc.StatusCode.UNAUTHENTICATED and "internal" not in (err.details() or ""):
                    raise Unauthenticated(
                        "API key not recognised; check the key or ask the operator to rotate it"
                    ) from None
                raise _unavailable("checking an API key", err) from None
            return reply.merchant_id, reply.active

        return await self._keys.get(hashlib.sha256(api_key.encode()).hexdigest(), load)
