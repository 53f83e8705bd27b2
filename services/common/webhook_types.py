"""Webhook event types and endpoint filters, one meaning for the ledger (which checks
an endpoint's filter when it is set) and the notifier (which routes each event to the
endpoints whose filter it matches). Pure.

A PaymentEvent's type name ("confirmed", "refund_confirmed", "config_changed") is sent
as the webhook's `type`: "payment.confirmed", "refund.confirmed",
"merchant.config_changed". An endpoint's filter is a list of such types or families
("payment.*"); an empty list wants every type. "*" alone also wants every type."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

PAYMENT_PREFIX = "payment."
PAYOUT_PREFIXES = ("refund_", "payout_")
CONFIG_CHANGED = "config_changed"
MAX_FILTERS = 32


def webhook_type(event_type: str) -> str:
    """'confirmed' -> 'payment.confirmed', 'refund_confirmed' -> 'refund.confirmed',
    'config_changed' -> 'merchant.config_changed' (the `type` field of the body)."""
    if event_type == CONFIG_CHANGED:
        return "merchant." + CONFIG_CHANGED
    for prefix in PAYOUT_PREFIXES:
        if event_type.startswith(prefix):
            return prefix[:-1] + "." + event_type[len(prefix) :]
    return PAYMENT_PREFIX + event_type


def wants(filters: Sequence[str], event_webhook_type: str) -> bool:
    """Whether an endpoint with `filters` wants an event of this webhook type."""
    if not filters:
        return True
    for f in filters:
        if f == "*" or f == event_webhook_type:
            return True
        if f.endswith(".*") and event_webhook_type.startswith(f[:-1]):
            return True
    return False


def check_filters(filters: Iterable[str], known: frozenset[str]) -> list[str]:
    """The filter as stored (trimmed, deduplicated, sorted), or ValueError naming the
    first entry that is neither a known type, a known family ("payment.*") nor "*"."""
    families = {t.split(".", 1)[0] + ".*" for t in known}
    out: set[str] = set()
    for i, raw in enumerate(filters):
        f = raw.strip()
        if f != "*" and f not in known and f not in families:
            examples = ", ".join(sorted(families)[:3])
            raise ValueError(
                f"event_types[{i}] is {raw[:80]!r}: not a webhook event type (such as payment.confirmed) "
                f"nor a family ({examples}, ...) nor '*'"
            )
        out.add(f)
    if len(out) > MAX_FILTERS:
        raise ValueError(f"event_types has {len(out)} entries; at most {MAX_FILTERS}")
    return [] if "*" in out else sorted(out)
