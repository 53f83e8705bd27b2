"""SQL of the audit log: append an entry (in the caller's transaction, the one of the
change), and for a change of where money or webhooks go (`announced`) its
config_changed event in the outbox, so the merchant's webhook and NATS subscribers
hear of it as it commits: a treasury or xpub redirected with a stolen admin token
is announced at once. List a merchant's entries newest first. Nothing here updates
or deletes: the table refuses both (a trigger)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.adapters.models import AUDIT_LOG
from services.ledger.adapters.repository.outbox import insert_audit_event

# Changes announced as config_changed events (webhooks, NATS): where swept funds go
# and where deposit addresses come from (set, scheduled, cancelled, failed), where
# webhooks go, and which keys can act. Every change is in the log either way.
ANNOUNCED_FAMILIES = ("treasury.", "xpub.", "webhook_endpoint.")
ANNOUNCED = frozenset({"api_key.created", "api_key.revoked"})


def announced(action: str) -> bool:
    return action in ANNOUNCED or action.startswith(ANNOUNCED_FAMILIES)


async def append(
    conn: AsyncConnection,
    *,
    merchant_id: str,
    actor: str,
    action: str,
    target: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    row = (
        await conn.execute(
            insert(AUDIT_LOG)
            .values(
                merchant_id=merchant_id,
                actor=actor,
                action=action,
                target=target,
                before=before or {},
                after=after or {},
            )
            .returning(*AUDIT_LOG.c)
        )
    ).one()
    if announced(action):
        await insert_audit_event(conn, row)


async def entries(conn: AsyncConnection, merchant_id: str, *, before_id: int | None, limit: int) -> list[Any]:
    query = select(AUDIT_LOG).where(AUDIT_LOG.c.merchant_id == merchant_id)
    if before_id is not None:
        query = query.where(AUDIT_LOG.c.id < before_id)
    return list(await conn.execute(query.order_by(AUDIT_LOG.c.id.desc()).limit(limit)))
