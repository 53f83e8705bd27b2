"""Merchants' API keys: issue (shown once, stored hashed), list, revoke now or at a
time (rotation with overlap). A merchant key with the keys scope manages its own
merchant's keys and can grant only scopes it has itself; the operator manages any
merchant's. Rules of who may call what are domain/scopes.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from services.ledger.adapters import repository as repo
from services.ledger.authentication import Authenticator, MerchantAccess, actor, owned_merchant
from services.ledger.domain import keys
from services.ledger.domain.scopes import ALL_SCOPES, Scope
from services.ledger.domain.validation import utcnow

MAX_NAME = 64
MAX_OVERLAP = timedelta(days=30)


class ApiKeysService:
    def __init__(self, engine: AsyncEngine, auth: Authenticator) -> None:
        self._engine = engine
        self._auth = auth

    async def create(
        self,
        caller: MerchantAccess | None,
        *,
        merchant_id: str,
        name: str,
        scopes: list[Scope],
        expires_at: datetime | None,
    ) -> tuple[Any, str]:
        """(the stored key, its secret). `caller` None: the operator."""
        merchant_id = owned_merchant(caller, merchant_id)
        name = name.strip()
        if not 1 <= len(name) <= MAX_NAME:
            raise InvalidArgument(f"name must be 1 to {MAX_NAME} characters")
        granted = frozenset(scopes)
        if not granted:
            raise InvalidArgument("scopes is empty: give at least one scope")
        if caller is not None and not granted <= caller.scopes:
            extra = ", ".join(sorted(s.value for s in granted - caller.scopes))
            raise PermissionDenied(f"this key cannot grant scopes it does not have: {extra}")
        now = utcnow()
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument("expires_at must be in the future")
        secret = keys.new_api_key()
        key_id = "key_" + keys.new_payment_id().split("_", 1)[1]
        async with self._engine.begin() as conn:
            if await repo.merchants.get_merchant(conn, merchant_id) is None:
                raise NotFound(f"merchant {merchant_id[:64]} not found")
            await repo.api_keys.insert_key(
                conn,
                id=key_id,
                merchant_id=merchant_id,
                name=name,
                key_hash=keys.hash_api_key(secret),
                key_prefix=keys.key_prefix(secret),
                scopes=sorted(s.value for s in granted),
                created_at=now,
                expires_at=expires_at,
                created_by=caller.key_id if caller is not None else "operator",
            )
            stored = await repo.api_keys.get_key(conn, key_id)
            await repo.audit.append(
                conn,
                merchant_id=merchant_id,
                actor=actor(caller),
                action="api_key.created",
                target=key_id,
                after={
                    "name": name,
                    "scopes": sorted(s.value for s in granted),
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
        return stored, secret

    async def list(self, caller: MerchantAccess | None, merchant_id: str) -> list[Any]:
        merchant_id = owned_merchant(caller, merchant_id)
        async with self._engine.connect() as conn:
            if caller is None and await repo.merchants.get_merchant(conn, merchant_id) is None:
                raise NotFound(f"merchant {merchant_id[:64]} not found")
            return await repo.api_keys.list_keys(conn, merchant_id)

    async def revoke(self, caller: MerchantAccess | None, key_id: str, at: datetime | None) -> Any:
        """Stops working at `at` (None: now; in the past: now; at most 30 days ahead).
        Revoking again may bring the time forward, never push it back."""
        if not key_id:
            raise InvalidArgument("key_id is required")
        now = utcnow()
        when = now if at is None or at < now else at
        if when - now > MAX_OVERLAP:
            raise InvalidArgument("revoke_at may be at most 30 days ahead (the overlap of a rotation)")
        async with self._engine.begin() as conn:
            key = await repo.api_keys.get_key(conn, key_id, for_update=True)
            if key is None or (caller is not None and key.merchant_id != caller.merchant_id):
                raise NotFound(f"API key {key_id[:64]} not found")
            if key.revoked_at is not None and key.revoked_at <= when:
                if key.revoked_at <= now:
                    raise FailedPrecondition(f"API key {key_id} is revoked already")
                raise FailedPrecondition(
                    f"API key {key_id} is revoked at {key.revoked_at.isoformat()} already; a revocation can only be "
                    "brought forward"
                )
            await repo.api_keys.set_revoked(conn, key_id, when)
            stored = await repo.api_keys.get_key(conn, key_id)
            await repo.audit.append(
                conn,
                merchant_id=key.merchant_id,
                actor=actor(caller),
                action="api_key.revoked",
                target=key_id,
                before={"revoked_at": key.revoked_at.isoformat() if key.revoked_at else None},
                after={"revoked_at": when.isoformat()},
            )
        self._auth.forget()
        return stored


async def issue_primary_key(conn, merchant_id: str, secret: str, now: datetime) -> None:
    """The operator's key of a merchant (CreateMerchant, RotateApiKey): every scope."""
    await repo.api_keys.insert_key(
        conn,
        id="key_" + keys.new_payment_id().split("_", 1)[1],
        merchant_id=merchant_id,
        name="primary",
        key_hash=keys.hash_api_key(secret),
        key_prefix=keys.key_prefix(secret),
        scopes=sorted(s.value for s in ALL_SCOPES),
        created_at=now,
        created_by="operator",
    )
