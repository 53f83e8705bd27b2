"""The notifier's Prometheus metrics (served by services.common.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter(
    "paymesh_webhook_attempts_total",
    "Webhook attempts, by result (succeeded, http_status, timeout, network, blocked, invalid_url).",
    ["result"],
)
ATTEMPT_SECONDS = Histogram(
    "paymesh_webhook_attempt_seconds",
    "Duration of one webhook attempt (connect to last byte read).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
FINISHED = Counter(
    "paymesh_webhook_deliveries_finished_total",
    "Deliveries that reached a final state (succeeded, dead_lettered, skipped).",
    ["state"],
)
EVENT_TO_DELIVERY = Histogram(
    "paymesh_webhook_event_to_delivery_seconds",
    "From the payment event's creation to the merchant's 2xx answer.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
IN_FLIGHT = Gauge("paymesh_webhook_in_flight", "Deliveries claimed by this process and not yet recorded.")
INTAKE = Counter("paymesh_webhook_events_taken_in_total", "Payment events taken in from JetStream.")
