"""The checkout's Prometheus metrics (served on PAYMESH_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PAGES = Counter("paymesh_checkout_pages_total", "Payment pages rendered, by payment status.", ["status"])
LIVE_STREAMS = Gauge("paymesh_checkout_live_streams", "Open live-update streams (server-sent events).")
