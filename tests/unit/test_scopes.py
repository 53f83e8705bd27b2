"""The one table of the scope every merchant RPC needs (services/ledger/domain/scopes.py)."""

from __future__ import annotations

import importlib
import pkgutil

import paymesh
import pytest
from google.protobuf import descriptor_pool

from services.ledger.domain.scopes import REQUIRED, Scope, parse_scopes, required_scope

pytestmark = pytest.mark.unit

# The services a merchant API key calls on the ledger (the notifier's NotifierService
# has one scope for all of it: scopes.NOTIFIER_SCOPE).
MERCHANT_SERVICES = {
    "paymesh.ledger.v1.PaymentService",
    "paymesh.ledger.v1.PaymentLinkService",
    "paymesh.ledger.v1.PayoutService",
    "paymesh.ledger.v1.ApiKeyService",
    "paymesh.ledger.v1.AuditService",
    "paymesh.ledger.v1.WebhookEndpointService",
    "paymesh.events.v1.EventService",
}


def all_methods() -> set[str]:
    for module in pkgutil.walk_packages(paymesh.__path__, "paymesh."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)
    pool = descriptor_pool.Default()
    found = set()
    for name in MERCHANT_SERVICES:
        service = pool.FindServiceByName(name)
        found |= {f"{name}/{m.name}" for m in service.methods}
    return found


def test_every_merchant_rpc_names_its_scope_and_nothing_else_is_in_the_table():
    assert set(REQUIRED) == all_methods()


def test_an_rpc_outside_the_table_takes_no_merchant_key():
    assert required_scope("paymesh.ledger.v1.MerchantAdminService/CreateMerchant") is None
    assert required_scope("") is None


def test_stored_scope_names_unknown_ones_are_never_granted():
    assert parse_scopes(["payments:read", "root", "keys:manage"]) == {Scope.PAYMENTS_READ, Scope.KEYS_MANAGE}
