"""Prometheus metrics: one registry per process, served on PAYMESH_METRICS_PORT."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

GRPC_HANDLED = Counter(
    "paymesh_grpc_server_handled_total",
    "gRPC calls completed, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_LATENCY = Histogram(
    "paymesh_grpc_server_handling_seconds",
    "Time to complete a unary gRPC call (or to open a server stream).",
    ["grpc_service", "grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
NATS_MESSAGES = Counter(
    "paymesh_nats_messages_total",
    "JetStream messages handled by a consumer, by durable name and outcome (ack, nak, term).",
    ["durable", "outcome"],
)
NATS_BATCH_SIZE = Histogram(
    "paymesh_nats_batch_size",
    "Messages per batch handed to a consumer's handler, by durable name (large batches: a backlog).",
    ["durable"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
NATS_PUBLISHED = Counter(
    "paymesh_nats_published_total",
    "Messages published to JetStream, by stream and whether JetStream saw a duplicate id.",
    ["stream", "duplicate"],
)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> int | None:
    """Serve /metrics in a background thread; return the bound port (None when disabled)."""
    if port <= 0:
        return None
    server, _thread = start_http_server(port, addr=host)
    return server.server_port
