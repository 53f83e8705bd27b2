"""The events API: a merchant's payment events read back from the outbox, in
commit order (repository/outbox.list_events), the same events and ids as webhooks
and NATS. The cursor is the outbox row's (txid, id), carried in a signed page
token or named by an event id the merchant already has."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import InvalidArgument, NotFound
from services.common.page_tokens import PageTokens, filter_fingerprint, page_size
from services.ledger.adapters import repository as repo
from services.ledger.domain.validation import utcnow


class EventsService:
    def __init__(self, engine: AsyncEngine, tokens: PageTokens) -> None:
        self._engine = engine
        self._tokens = tokens

    async def list(
        self,
        merchant_id: str,
        *,
        after_event_id: str,
        types: list[str],
        payment_id: str,
        size: int,
        token: str,
    ) -> tuple[list[bytes], str]:
        """The encoded PaymentEvents of a page, oldest first, and the token after it
        (always set: polling with it returns what commits later)."""
        if after_event_id and token:
            raise InvalidArgument("give after_event_id or page_token, not both")
        if len(payment_id) > 64:
            raise InvalidArgument("payment_id is not a payment id (too long)")
        limit = page_size(size)
        names = sorted(set(types))
        scope = f"ListEvents|{merchant_id}"
        filters = filter_fingerprint(names, payment_id)
        cursor = (0, 0)
        async with self._engine.connect() as conn:
            if token:
                read = self._tokens.read(scope, token, str, filters)
                assert read is not None
                cursor = _cursor(str(read[1]))
            elif after_event_id:
                try:
                    uuid.UUID(after_event_id)
                except ValueError:
                    raise InvalidArgument(f"after_event_id is not an event id: {after_event_id[:40]!r}") from None
                found = await repo.outbox.event_cursor(conn, merchant_id, after_event_id)
                if found is None:
                    raise NotFound(
                        f"event {after_event_id} is not among your kept events (unknown, another merchant's, or "
                        "older than the retention); list from the start with no after_event_id"
                    )
                cursor = found
            rows = await repo.outbox.list_events(
                conn, merchant_id, after=cursor, types=names, payment_id=payment_id, limit=limit
            )
        if rows:
            cursor = (rows[-1]["txid"], rows[-1]["id"])
        next_token = self._tokens.issue(scope, utcnow(), f"{cursor[0]}:{cursor[1]}", filters)
        return [bytes(r["payload"]) for r in rows], next_token


def _cursor(value: str) -> tuple[int, int]:
    txid, _, row_id = value.partition(":")
    if not (txid.isdigit() and row_id.isdigit()):
        raise InvalidArgument("page_token is not a token this ledger issued")
    return int(txid), int(row_id)
