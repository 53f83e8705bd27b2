"""Merchants' webhook endpoints: add, read, list, change, delete, roll the signing
secret with an overlap; and every endpoint of a merchant with its secrets for the
notifier (MerchantDirectoryService.GetWebhookEndpoints).

A merchant key with the webhooks scope manages its own merchant's endpoints; the
operator any merchant's (authentication.owned_merchant). Every change is in the audit
log in the transaction of the change (secrets never: only that one was rolled). URLs
pass the SSRF check here (services/common/ssrf.py) and again at each delivery. The
operator's webhook (MerchantAdminService.SetWebhook, on the merchant's row) is the
endpoint "primary": every event type, not managed here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import webhook_types
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.ledger.adapters import repository as repo
from services.ledger.authentication import MerchantAccess, actor, owned_merchant
from services.ledger.domain import keys
from services.ledger.domain.validation import utcnow, validate_webhook_url

PRIMARY = "primary"
MAX_ENDPOINTS = 16
MAX_DESCRIPTION = 200
MAX_OVERLAP = timedelta(days=7)


@dataclass(frozen=True)
class EndpointTarget:
    """One endpoint as the notifier needs it: where, what, and the secrets that sign."""

    endpoint_id: str
    url: str
    event_types: list[str]
    enabled: bool
    secrets: list[str]


def _description(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidArgument(f"description is {len(text)} characters; at most {MAX_DESCRIPTION}")
    return text


def _audited(row: Any) -> dict[str, Any]:
    return {
        "url": row.url,
        "description": row.description,
        "event_types": list(row.event_types),
        "enabled": row.enabled,
    }


class WebhookEndpointsService:
    def __init__(self, engine: AsyncEngine, *, known_types: frozenset[str], allow_private_webhooks: bool) -> None:
        """`known_types`: every webhook type an endpoint can ask for (api/convert.py:
        WEBHOOK_EVENT_TYPES, from the PaymentEventType enum)."""
        self._engine = engine
        self._known = known_types
        self._allow_private = allow_private_webhooks

    def _filters(self, types: list[str]) -> list[str]:
        try:
            return webhook_types.check_filters(types, self._known)
        except ValueError as err:
            raise InvalidArgument(str(err)) from None

    def _url(self, url: str) -> str:
        url = url.strip()
        if not url:
            raise InvalidArgument("url is required")
        if len(url) > 2048:
            raise InvalidArgument("url is longer than 2048 characters")
        return validate_webhook_url(url, allow_private=self._allow_private)

    async def create(
        self,
        caller: MerchantAccess | None,
        *,
        merchant_id: str,
        url: str,
        description: str,
        event_types: list[str],
        enabled: bool,
    ) -> tuple[Any, str]:
        """(the stored endpoint, its secret). `caller` None: the operator."""
        merchant_id = owned_merchant(caller, merchant_id)
        url, description, filters = self._url(url), _description(description), self._filters(event_types)
        now = utcnow()
        secret = keys.new_webhook_secret()
        endpoint_id = "we_" + keys.new_payment_id().split("_", 1)[1]
        async with self._engine.begin() as conn:
            if await repo.merchants.get_merchant(conn, merchant_id, for_update=True) is None:
                raise NotFound(f"merchant {merchant_id[:64]} not found")
            if await repo.webhook_endpoints.count_endpoints(conn, merchant_id) >= MAX_ENDPOINTS:
                raise FailedPrecondition(
                    f"merchant {merchant_id} has {MAX_ENDPOINTS} webhook endpoints already; delete one first"
                )
            await repo.webhook_endpoints.insert_endpoint(
                conn,
                id=endpoint_id,
                merchant_id=merchant_id,
                url=url,
                description=description,
                event_types=filters,
                enabled=enabled,
                secret=secret,
                secret_rolled_at=now,
                created_at=now,
                updated_at=now,
            )
            stored = await repo.webhook_endpoints.get_endpoint(conn, endpoint_id)
            await repo.audit.append(
                conn,
                merchant_id=merchant_id,
                actor=actor(caller),
                action="webhook_endpoint.created",
                target=endpoint_id,
                after=_audited(stored),
            )
        return stored, secret

    async def _owned(self, conn, caller: MerchantAccess | None, endpoint_id: str, *, for_update: bool = False) -> Any:
        if not endpoint_id:
            raise InvalidArgument("endpoint_id is required")
        if endpoint_id == PRIMARY:
            raise FailedPrecondition(
                'the endpoint "primary" is the operator\'s webhook; the operator changes it with '
                "MerchantAdminService.SetWebhook"
            )
        row = await repo.webhook_endpoints.get_endpoint(conn, endpoint_id[:64], for_update=for_update)
        if row is None or (caller is not None and row.merchant_id != caller.merchant_id):
            raise NotFound(f"webhook endpoint {endpoint_id[:64]} not found")
        return row

    async def get(self, caller: MerchantAccess | None, endpoint_id: str) -> Any:
        async with self._engine.connect() as conn:
            return await self._owned(conn, caller, endpoint_id)

    async def list(self, caller: MerchantAccess | None, merchant_id: str) -> list[Any]:
        merchant_id = owned_merchant(caller, merchant_id)
        async with self._engine.connect() as conn:
            if caller is None and await repo.merchants.get_merchant(conn, merchant_id) is None:
                raise NotFound(f"merchant {merchant_id[:64]} not found")
            return await repo.webhook_endpoints.list_endpoints(conn, merchant_id)

    async def update(
        self,
        caller: MerchantAccess | None,
        endpoint_id: str,
        *,
        url: str | None,
        description: str | None,
        event_types: list[str] | None,
        enabled: bool | None,
    ) -> Any:
        """Change the fields given (None: keep)."""
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = self._url(url)
        if description is not None:
            values["description"] = _description(description)
        if event_types is not None:
            values["event_types"] = self._filters(event_types)
        if enabled is not None:
            values["enabled"] = enabled
        if not values:
            raise InvalidArgument("nothing to change: set url, description, event_types or enabled")
        async with self._engine.begin() as conn:
            before = await self._owned(conn, caller, endpoint_id, for_update=True)
            await repo.webhook_endpoints.update_endpoint(conn, before.id, updated_at=utcnow(), **values)
            after = await repo.webhook_endpoints.get_endpoint(conn, before.id)
            await repo.audit.append(
                conn,
                merchant_id=before.merchant_id,
                actor=actor(caller),
                action="webhook_endpoint.updated",
                target=before.id,
                before={k: v for k, v in _audited(before).items() if k in values},
                after={k: v for k, v in _audited(after).items() if k in values},
            )
        return after

    async def delete(self, caller: MerchantAccess | None, endpoint_id: str) -> Any:
        async with self._engine.begin() as conn:
            before = await self._owned(conn, caller, endpoint_id, for_update=True)
            await repo.webhook_endpoints.delete_endpoint(conn, before.id)
            await repo.audit.append(
                conn,
                merchant_id=before.merchant_id,
                actor=actor(caller),
                action="webhook_endpoint.deleted",
                target=before.id,
                before=_audited(before),
            )
        return before

    async def roll_secret(
        self, caller: MerchantAccess | None, endpoint_id: str, overlap_seconds: int
    ) -> tuple[Any, str]:
        """A new secret signs from now; the current one keeps signing next to it for
        `overlap_seconds` (0: stops now). A secret still in an earlier overlap stops now:
        at most two sign at once."""
        overlap = timedelta(seconds=overlap_seconds)
        if overlap > MAX_OVERLAP:
            raise InvalidArgument(f"overlap_seconds is {overlap_seconds}; at most {int(MAX_OVERLAP.total_seconds())}")
        now = utcnow()
        secret = keys.new_webhook_secret()
        async with self._engine.begin() as conn:
            before = await self._owned(conn, caller, endpoint_id, for_update=True)
            await repo.webhook_endpoints.update_endpoint(
                conn,
                before.id,
                secret=secret,
                secret_rolled_at=now,
                previous_secret=before.secret if overlap else None,
                previous_secret_expires_at=now + overlap if overlap else None,
                updated_at=now,
            )
            after = await repo.webhook_endpoints.get_endpoint(conn, before.id)
            await repo.audit.append(
                conn,
                merchant_id=before.merchant_id,
                actor=actor(caller),
                action="webhook_endpoint.secret_rolled",
                target=before.id,
                after={"previous_secret_expires_at": after.previous_secret_expires_at.isoformat() if overlap else None},
            )
        return after, secret

    async def targets(self, merchant_id: str) -> tuple[bool, list[EndpointTarget]]:
        """(merchant active, every endpoint with the secrets that sign now): the
        operator's webhook as "primary" first (when it has a URL), then the merchant's."""
        if not merchant_id:
            raise InvalidArgument("merchant_id is required")
        now = utcnow()
        async with self._engine.connect() as conn:
            merchant = await repo.merchants.get_merchant(conn, merchant_id)
            if merchant is None:
                raise NotFound(f"merchant {merchant_id[:64]} not found")
            rows = await repo.webhook_endpoints.list_endpoints(conn, merchant_id)
        out = []
        if merchant.webhook_url:
            out.append(EndpointTarget(PRIMARY, merchant.webhook_url, [], True, [merchant.webhook_secret]))
        for r in rows:
            secrets = [r.secret]
            if r.previous_secret and r.previous_secret_expires_at and r.previous_secret_expires_at > now:
                secrets.append(r.previous_secret)
            out.append(EndpointTarget(r.id, r.url, list(r.event_types), r.enabled, secrets))
        return merchant.status == "active", out
