"""HTTP/JSON (Connect) beside gRPC: CreatePayment at a stated concurrency over both
transports, against one ledger process (Postgres with fsync on, real NATS); the
load generator is this process, on the same 2 cores. Bounded: each phase runs for
a fixed time.

    python -m bench.bench_connect [--seconds 8] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import grpc
import httpx
from paymesh.ledger.v1 import payment_service_pb2 as spb

from bench.common import summary_ms, write_section
from tests.support.ledger import ADMIN_TOKEN, SERVICE_TOKEN_ENV, create_merchant, fresh_xpub, write_chains_file
from tools import devstack
from tools.services import ServiceProcess


async def over_grpc(port: int, merchant, seconds: float, concurrency: int, tag: str) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = type(merchant.payments)(channel)

        async def worker(w: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                request = spb.CreatePaymentRequest(
                    chain_id=31337, asset="ETH", amount=str(10**15 + n), idempotency_key=f"{tag}-{w}-{n}"
                )
                started = time.perf_counter()
                await stub.CreatePayment(request, metadata=merchant.auth)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    return round(len(latencies) / elapsed), latencies


async def over_http(port: int, merchant, seconds: float, concurrency: int, tag: str) -> tuple[int, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    url = f"http://127.0.0.1:{port}/paymesh.ledger.v1.PaymentService/CreatePayment"
    headers = {"Content-Type": "application/json", "Authorization": merchant.auth[0][1]}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker(w: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                body = json.dumps(
                    {"chainId": "31337", "asset": "ETH", "amount": str(10**15 + n), "idempotencyKey": f"{tag}-{w}-{n}"}
                )
                started = time.perf_counter()
                reply = await client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if reply.status_code != 200:
                    raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    return round(len(latencies) / elapsed), latencies


async def main(seconds: float, concurrency: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="paymesh-bench-connect-"))
    rows = []
    with devstack.postgres_scratch_dir(work / "pg") as pg_dir:
        pg = devstack.start_postgres(pg_dir, fast=False)  # fsync on: honest commits
        nats_server = devstack.start_nats(work / "nats")
        connect_port = devstack.free_port()
        try:
            env = {
                "PAYMESH_DATABASE_URL": pg.create_database("bench"),
                "PAYMESH_NATS_URL": nats_server.url,
                "PAYMESH_CHAINS_FILE": str(write_chains_file(work / "chains.yaml")),
                "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
                "PAYMESH_CONNECT_PORT": str(connect_port),
                **SERVICE_TOKEN_ENV,
                "PAYMESH_LOG_LEVEL": "WARNING",
            }
            ledger = ServiceProcess("services.ledger", env, work / "ledger.log", devstack.free_port()).start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}") as channel:
                    xpub, _ = fresh_xpub()
                    merchant = await create_merchant(channel, xpub)
                await over_grpc(ledger.port, merchant, 2, 8, "warm-g")
                await over_http(connect_port, merchant, 2, 8, "warm-h")
                for round_ in range(2):  # interleaved, twice: the machine's noise hits both alike
                    for name, run, port in (("gRPC", over_grpc, ledger.port), ("HTTP/JSON", over_http, connect_port)):
                        rate, lat = await run(port, merchant, seconds, concurrency, f"{name}-{round_}")
                        s = summary_ms(lat)
                        rows.append((name, rate, s))
                        print(f"{name}: {rate}/s p50={s['p50']:.1f} ms p99={s['p99']:.1f} ms", flush=True)
            finally:
                ledger.terminate()
        finally:
            nats_server.stop()
            pg.stop()
    table = "\n".join(
        f"| {name} | {concurrency} | {rate:,} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['max']:.1f} |"
        for name, rate, s in rows
    )
    return f"""## HTTP/JSON (Connect) beside gRPC

`python -m bench.bench_connect` ({seconds:g} s per row, {concurrency} clients, the two
transports interleaved twice): CreatePayment in base units with an API key and an
idempotency key against one ledger process (Postgres 16 with fsync on, real NATS);
the load generator (grpc.aio, httpx with keep-alive connections) on the same 2 cores.

| transport | clients | CreatePayment/s | p50 ms | p90 ms | p99 ms | max ms |
|---|---:|---:|---:|---:|---:|---:|
{table}

Where the time goes: an HTTP/JSON call is the gRPC call plus the gateway
(services/common/connect_gateway.py): HTTP parsing in uvicorn, proto JSON
parsing and printing (json_format, pure Python), and the loopback gRPC hop to the
ledger's own server, which keeps one path (checks, scopes, errors) for both
transports; and on the client side httpx, which costs more CPU per call than
grpc.aio on the same cores.
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    report = asyncio.run(main(args.seconds, args.concurrency))
    print(write_section("connect", report))
