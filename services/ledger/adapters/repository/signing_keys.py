"""The ledger's own signing keys (services/common/db.py: made once by whichever
replica comes first, the same for all of them)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import signing_key
from services.ledger.adapters.models import SIGNING_KEYS


async def page_token_key(engine: AsyncEngine) -> bytes:
    """The key that signs the ledger's page tokens (services/common/page_tokens.py)."""
    return await signing_key(engine, SIGNING_KEYS, "page_tokens")
