"""Reading the audit log (AuditService): a merchant's own entries (a key with the keys
scope), or any merchant's for the operator. Entries are written by each use case in
the transaction of its change (repository/audit.py); nothing rewrites them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import NotFound
from services.common.page_tokens import PageTokens, page_size
from services.ledger.adapters import repository as repo
from services.ledger.authentication import MerchantAccess, owned_merchant


class AuditLogService:
    def __init__(self, engine: AsyncEngine, tokens: PageTokens) -> None:
        self._engine = engine
        self._tokens = tokens

    async def entries(
        self, caller: MerchantAccess | None, merchant_id: str, size: int, token: str
    ) -> tuple[list[Any], str]:
        """Newest first. `caller` None: the operator (merchant_id required)."""
        merchant_id = owned_merchant(caller, merchant_id)
        limit = page_size(size)
        scope = f"ListAuditEntries|{merchant_id}"
        after = self._tokens.read(scope, token, int)
        async with self._engine.connect() as conn:
            if caller is None and await repo.merchants.get_merchant(conn, merchant_id) is None:
                raise NotFound(f"merchant {merchant_id[:64]} not found")
            rows = await repo.audit.entries(
                conn,
                merchant_id,
                before_id=after[1] if after else None,
                limit=limit + 1,  # type: ignore[arg-type]
            )
        next_token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            next_token = self._tokens.issue(scope, rows[-1].created_at, rows[-1].id)
        return rows, next_token
