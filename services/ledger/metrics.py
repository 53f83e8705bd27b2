"""The ledger's own Prometheus metrics (gRPC and NATS ones come from services.common.metrics)."""

from prometheus_client import Counter, Histogram

PAYMENTS_CREATED = Counter(
    "paymesh_ledger_payments_created_total", "Payments created (idempotent retries not counted).", ["chain_id", "asset"]
)
CHAIN_EVENTS_APPLIED = Counter(
    "paymesh_ledger_chain_events_applied_total", "Chain events applied, by kind (transfer, head, reorg).", ["kind"]
)
PAYMENT_EVENTS = Counter(
    "paymesh_ledger_payment_events_total", "Payment events written to the outbox, by type.", ["event"]
)
OUTBOX_PUBLISHED = Counter(
    "paymesh_ledger_outbox_published_total", "Outbox events published to JetStream by the relay."
)
CREATE_BATCH_SIZE = Histogram(
    "paymesh_ledger_create_batch_size",
    "CreatePayment requests that shared one insert statement and commit (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
