"""Which of a merchant's endpoints an event goes to. Pure.

Every enabled endpoint whose event types want the event's webhook type gets one
delivery (services/common/webhook_types.py: exact types, families such as
"payment.*", or nothing = every type). A merchant with no endpoint at all, or a
disabled merchant, gets one delivery to "primary", which the dispatcher then records
as skipped with the reason: the merchant can see that an event had nowhere to go."""

from __future__ import annotations

from services.common.webhook_types import wants, webhook_type
from services.notifier.domain.records import PRIMARY_ENDPOINT, MerchantEndpoints


def endpoints_for(event_type: str, merchant: MerchantEndpoints | None) -> list[str]:
    """The endpoint ids an event of `event_type` (a PaymentEvent type name such as
    "confirmed") goes to; `merchant` None: the ledger does not know the merchant."""
    if merchant is None or not merchant.active or not merchant.endpoints:
        return [PRIMARY_ENDPOINT]
    kind = webhook_type(event_type)
    return [e.endpoint_id for e in merchant.endpoints if e.enabled and e.url and wants(e.event_types, kind)]
