"""Prometheus metrics of the sweeper (served by services.common.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SWEPT = Counter("paymesh_sweeper_payments_swept_total", "Payments swept (ledger CompleteSweep).", ["chain_id", "asset"])
RELEASED = Counter(
    "paymesh_sweeper_payments_released_total",
    "Payments given back to the ledger unswept, by category (dust, config, gas_wallet, fees, error, stopping).",
    ["chain_id", "category"],
)
TRANSACTIONS = Counter(
    "paymesh_sweeper_transactions_total",
    "Transactions signed and recorded, by kind (sweep, gas_topup).",
    ["chain_id", "kind"],
)
REPLACEMENTS = Counter(
    "paymesh_sweeper_replacements_total", "Stuck transactions replaced with higher fees.", ["chain_id"]
)
REBROADCASTS = Counter(
    "paymesh_sweeper_rebroadcasts_total",
    "Recorded transactions broadcast again (recovery, node lost it).",
    ["chain_id"],
)
SWEEP_SECONDS = Histogram(
    "paymesh_sweeper_sweep_seconds",
    "From claim to CompleteSweep, per payment.",
    ["chain_id"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
LEADER = Gauge("paymesh_sweeper_leader", "1 while this replica is the chain's signer.", ["chain_id"])
IN_FLIGHT = Gauge("paymesh_sweeper_in_flight", "Payments being swept.", ["chain_id"])
GAS_WALLET_WEI = Gauge("paymesh_sweeper_gas_wallet_balance_wei", "Gas wallet balance (last seen).", ["chain_id"])
PAYOUTS = Counter(
    "paymesh_sweeper_payouts_total",
    "Refunds and payouts sent and confirmed (or failed for good).",
    ["chain_id", "kind"],
)
