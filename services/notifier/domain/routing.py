"""Which of a merchant's endpoints an event goes to. Pure.

Every enabled endpoint whose event types want the event's webhook type gets one
delivery (services/common/webhook_types.py: exact types, families such as
"payment.*", or nothing = every type). A merchant with no endpoint at all, or a
disabled merchant, gets one delivery to "primary", which the dispatcher then records
as skipped with the reason: the merchant can see that an event had nowhere to go."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.common.webhook_types import wants, webhook_type
from services.notifier.domain.records import PRIMARY_ENDPOINT, MerchantEndpoints


def endpoints_for(event_type: str, merchant: MerchantEndpoints | None) -> list[str]:
    """The endpoint ids an event of `event_type` (a PaymentEvent type name such as
    "confirmed") goes to; `merchant` None: the ledger does not know the merchant."""
    if merchant is None or not merchant.active or not merchant.endpoints:
        return [PRIMARY_ENDPOINT]
    kind = webhook_type(event_type)
    return [e.endpoint_id for e in merchant.endpoints if e.enabled and e.url and wants(e.event_types, kind)]


@dataclass
class RoutingPlan:
    """What to write for a batch of events: the (event id, endpoint id) deliveries, the
    events now routed, and those held back (their merchant's endpoints are not known)."""

    routes: list[tuple[str, str]] = field(default_factory=list)
    routed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


def plan(events: Iterable[tuple[str, str, str]], known: Mapping[str, MerchantEndpoints | None]) -> RoutingPlan:
    """Route (event id, event type, merchant id) events with `known` (merchant id ->
    its endpoints, or None when the ledger does not know the merchant); an event whose
    merchant is missing from `known` is held."""
    out = RoutingPlan()
    for event_id, event_type, merchant_id in events:
        if merchant_id not in known:
            out.held.append(event_id)
            continue
        out.routes.extend((event_id, e) for e in endpoints_for(event_type, known[merchant_id]))
        out.routed.append(event_id)
    return out
