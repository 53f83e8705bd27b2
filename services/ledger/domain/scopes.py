"""What each merchant API key may do: its scopes, and the one table of the scope every
RPC that takes a merchant key needs. Pure.

The table is the only place an RPC's scope is stated; the Authenticator enforces it
for every call (authentication.py, by the RPC the shared gRPC wrapper is serving),
and an RPC missing from it is refused to every key (fail closed; a unit test checks
that every merchant-facing RPC of the generated descriptors is in it).
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    PAYMENTS_READ = "payments:read"
    PAYMENTS_WRITE = "payments:write"
    PAYOUTS_WRITE = "payouts:write"
    PAYOUTS_APPROVE = "payouts:approve"
    WEBHOOKS_MANAGE = "webhooks:manage"
    KEYS_MANAGE = "keys:manage"


ALL_SCOPES = frozenset(Scope)

_L = "paymesh.ledger.v1."
REQUIRED: dict[str, Scope] = {
    _L + "PaymentService/CreatePayment": Scope.PAYMENTS_WRITE,
    _L + "PaymentService/GetPayment": Scope.PAYMENTS_READ,
    _L + "PaymentService/ListPayments": Scope.PAYMENTS_READ,
    _L + "PaymentService/CancelPayment": Scope.PAYMENTS_WRITE,
    _L + "PaymentService/WatchPayment": Scope.PAYMENTS_READ,
    _L + "PaymentService/RequotePayment": Scope.PAYMENTS_WRITE,
    _L + "PaymentService/ResolvePayment": Scope.PAYMENTS_WRITE,
    _L + "PaymentLinkService/CreatePaymentLink": Scope.PAYMENTS_WRITE,
    _L + "PaymentLinkService/GetPaymentLink": Scope.PAYMENTS_READ,
    _L + "PaymentLinkService/DeactivatePaymentLink": Scope.PAYMENTS_WRITE,
    _L + "PayoutService/CreateRefund": Scope.PAYOUTS_WRITE,
    _L + "PayoutService/GetRefund": Scope.PAYMENTS_READ,
    _L + "PayoutService/ListRefunds": Scope.PAYMENTS_READ,
    _L + "PayoutService/CreatePayout": Scope.PAYOUTS_WRITE,
    _L + "PayoutService/CreatePayoutBatch": Scope.PAYOUTS_WRITE,
    _L + "PayoutService/GetPayout": Scope.PAYMENTS_READ,
    _L + "PayoutService/ListPayouts": Scope.PAYMENTS_READ,
    _L + "PayoutService/CancelPayout": Scope.PAYOUTS_WRITE,
    _L + "PayoutService/GetPayoutWallet": Scope.PAYMENTS_READ,
    _L + "PayoutService/ApprovePayout": Scope.PAYOUTS_APPROVE,
    _L + "ApiKeyService/CreateApiKey": Scope.KEYS_MANAGE,
    _L + "ApiKeyService/ListApiKeys": Scope.KEYS_MANAGE,
    _L + "ApiKeyService/RevokeApiKey": Scope.KEYS_MANAGE,
    _L + "AuditService/ListAuditEntries": Scope.KEYS_MANAGE,
    _L + "AuditService/ListConfigChanges": Scope.KEYS_MANAGE,
    _L + "AuditService/CancelConfigChange": Scope.KEYS_MANAGE,
    _L + "WebhookEndpointService/CreateWebhookEndpoint": Scope.WEBHOOKS_MANAGE,
    _L + "WebhookEndpointService/GetWebhookEndpoint": Scope.WEBHOOKS_MANAGE,
    _L + "WebhookEndpointService/ListWebhookEndpoints": Scope.WEBHOOKS_MANAGE,
    _L + "WebhookEndpointService/UpdateWebhookEndpoint": Scope.WEBHOOKS_MANAGE,
    _L + "WebhookEndpointService/DeleteWebhookEndpoint": Scope.WEBHOOKS_MANAGE,
    _L + "WebhookEndpointService/RollWebhookEndpointSecret": Scope.WEBHOOKS_MANAGE,
    "paymesh.events.v1.EventService/ListEvents": Scope.PAYMENTS_READ,
}
# The notifier's API (NotifierService, a merchant key checked by the ledger): every RPC
# is about the merchant's webhooks.
NOTIFIER_SCOPE = Scope.WEBHOOKS_MANAGE


def required_scope(rpc: str) -> Scope | None:
    """The scope `rpc` ("package.Service/Method") needs; None: no merchant key may call it."""
    return REQUIRED.get(rpc)


def parse_scopes(names: list[str]) -> frozenset[Scope]:
    """Stored scope names -> scopes (an unknown name is dropped: never granted)."""
    known = {s.value for s in Scope}
    return frozenset(Scope(n) for n in names if n in known)
