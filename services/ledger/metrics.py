"""The ledger's own Prometheus metrics (gRPC and NATS ones come from services.common.metrics)."""

from prometheus_client import Counter, Gauge, Histogram

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

# Rate sources (services/ledger/rate_refresher.py). The age gauge is read at scrape
# time from the RateBook: +Inf while the book holds no rate for the pair.
RATE_AGE = Gauge(
    "paymesh_ledger_rate_age_seconds",
    "Age of the rate the ledger would quote, per pair (a guarded fixed pair: its guard's price).",
    ["asset", "currency"],
)
RATE_FETCH_ERRORS = Counter(
    "paymesh_ledger_rate_fetch_errors_total",
    "Failed fetches of a rate source, per pair and source kind (chainlink, coinbase, kraken).",
    ["asset", "currency", "source"],
)
RATES_WRITER = Gauge(
    "paymesh_ledger_rates_writer",
    "1 on the ledger replica that holds the rates lease (fetches and writes the ledger-rates bucket).",
)
