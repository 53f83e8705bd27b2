"""Prometheus metrics of the listener (served by services.common.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HEADS_HELD = Counter(
    "paymesh_listener_heads_held_total",
    "Heads not published because a second provider did not (yet) agree on the block they confirm.",
    ["chain_id"],
)
HEAD = Gauge("paymesh_listener_head_block", "Latest block number seen on the chain.", ["chain_id"])
CURSOR = Gauge("paymesh_listener_cursor_block", "Last block fully scanned and published.", ["chain_id"])
LAG = Gauge("paymesh_listener_lag_blocks", "Head minus cursor.", ["chain_id"])
WATCHED = Gauge("paymesh_listener_watched_addresses", "Deposit addresses watched.", ["chain_id"])
LEADER = Gauge("paymesh_listener_leader", "1 when this replica holds the chain's lease.", ["chain_id"])
MODE = Gauge(
    "paymesh_listener_connection_mode",
    "1 for the current way the head is followed (websocket, http_polling, disconnected, standby).",
    ["chain_id", "mode"],
)
RECONNECTS = Counter(
    "paymesh_listener_reconnects_total",
    "Connections lost and retried, by what (websocket, address_feed).",
    ["chain_id", "what"],
)
RPC_ERRORS = Counter(
    "paymesh_listener_rpc_errors_total",
    "Failed JSON-RPC calls, by method and kind (unavailable, rpc_error, malformed, range).",
    ["chain_id", "method", "kind"],
)
RPC_SECONDS = Histogram(
    "paymesh_listener_rpc_seconds",
    "JSON-RPC round trips (a batch counts once).",
    ["chain_id", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BLOCKS = Counter(
    "paymesh_listener_blocks_scanned_total",
    "Blocks scanned, by purpose (live, backfill, rescan).",
    ["chain_id", "purpose"],
)
TRANSFERS = Counter(
    "paymesh_listener_transfers_published_total",
    "Transfer events published (asset: native, internal, token).",
    ["chain_id", "asset"],
)
REORGS = Counter("paymesh_listener_reorgs_total", "Reorgs seen (and published).", ["chain_id"])
REORG_DEPTH = Histogram(
    "paymesh_listener_reorg_depth_blocks",
    "Blocks orphaned per reorg.",
    ["chain_id"],
    buckets=(1, 2, 3, 5, 8, 13, 21, 34, 64, 128),
)
LOGS_RANGE = Gauge("paymesh_listener_getlogs_range_blocks", "Current eth_getLogs range size.", ["chain_id"])
SCAN_ERRORS = Counter("paymesh_listener_scan_errors_total", "Scan steps that failed and were retried.", ["chain_id"])
DETECT_SECONDS = Histogram(
    "paymesh_listener_head_to_publish_seconds",
    "From seeing a new head to having published its events.",
    ["chain_id"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
