"""`python -m services.common.healthcheck [host:port]`: exit 0 when the gRPC
health service says SERVING; `... --http host:port` when GET /healthz answers 200
(the checkout). For docker-compose health checks; Kubernetes uses its native probes."""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def http_ok(target: str) -> int:
    import httpx

    try:
        status = httpx.get(f"http://{target}/healthz", timeout=3).status_code
    except httpx.HTTPError as err:
        print(f"{target}: {err}", file=sys.stderr)
        return 1
    print(f"{target}: HTTP {status}")
    return 0 if status == 200 else 1


def main() -> int:
    if sys.argv[1:2] == ["--http"]:
        return http_ok(sys.argv[2] if len(sys.argv) > 2 else f"127.0.0.1:{os.environ.get('PAYMESH_HTTP_PORT', '8080')}")
    target = sys.argv[1] if len(sys.argv) > 1 else f"127.0.0.1:{os.environ.get('PAYMESH_GRPC_PORT', '50051')}"
    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    except grpc.RpcError as err:
        print(f"{target}: {err.code().name}", file=sys.stderr)
        return 1
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    print(f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
