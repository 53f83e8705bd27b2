"""The ledger's repository: its SQL, one module per aggregate. Every function takes
the connection or pool (the caller, a use case, owns the transaction) and returns
plain records (domain/records.py, built with their `from_row`); nothing here decides
business rules.

    merchants          merchants, treasuries, derivation index reservations
    api_keys           merchants' API keys: issue, authenticate by hash, list, revoke
    audit              the append-only audit log of merchants' configuration changes
    config_changes     treasury and xpub changes waiting for their delay
    payouts            refunds and payouts, their leases and transactions recorded write-ahead
    payments           create (group-commit statement), read, list, lock, write back state
    payment_links      reusable payment pages: create, read, count uses against the limit
    transfers          recorded chain transfers, confirmation at a head, gas top-up labels
    chain_state        chain heads, orphaned blocks
    outbox             payment events as published (subject, protobuf payload), claim, prune
    sweeps             sweep leases and the sweep transactions recorded write-ahead
    watched_addresses  the deposit addresses the listeners' feed streams
    webhook_endpoints  merchants' webhook endpoints: URL, wanted event types, secrets
    signing_keys       the ledger's own keys (the page token key)
    bulk               one column list -> the SQL and arrays of an `unnest` bulk statement

Use cases import the package and name the aggregate: `repo.payments.get_payment(...)`.
How each function reaches Postgres (SQLAlchemy, the driver connection inside a
SQLAlchemy transaction, or the raw pool) is said in adapters/db.py.
"""

from services.ledger.adapters.repository import (
    api_keys,
    audit,
    chain_state,
    config_changes,
    merchants,
    outbox,
    payment_links,
    payments,
    payouts,
    signing_keys,
    sweeps,
    transfers,
    watched_addresses,
    webhook_endpoints,
)

__all__ = [
    "api_keys",
    "audit",
    "chain_state",
    "config_changes",
    "merchants",
    "outbox",
    "payment_links",
    "payments",
    "payouts",
    "signing_keys",
    "sweeps",
    "transfers",
    "watched_addresses",
    "webhook_endpoints",
]
