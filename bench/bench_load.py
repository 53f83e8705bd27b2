"""Load (issue 8, scenario 6): 10,000 payments created by 50 concurrent clients,
then paid in bursts of several hundred transfers per block, through the whole
mesh running as separate processes (ledger, listener, notifier; the sweeper is
left out so the chain carries only customer payments). Every payment must
reach CONFIRMED. Records creation throughput and latency, and time from a
burst's broadcast to each payment's CONFIRMED event, with PNG plots.

    python -m bench.bench_load [--payments 10000] [--clients 50] [--burst 500]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import grpc
import httpx
import nats
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payment_service_pb2 as spb

from bench.common import ROOT, summary_ms, write_section
from tests.e2e.conftest import FAST_ENV, clean_environment
from tests.support.ledger import create_merchant, fresh_xpub
from tools import devstack
from tools.pay import DEV_ADDRESSES, DEV_KEYS, sign
from tools.run_mesh import SERVICES, start_mesh

IMG = ROOT / "docs" / "img"


async def create_all(addr: str, merchant, payments: int, clients: int) -> tuple[list, list[float], float]:
    created, latencies = [], []
    queue = iter(range(payments))
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = type(merchant.payments)(channel)

        async def client() -> None:
            for i in queue:
                request = spb.CreatePaymentRequest(
                    chain_id=31337, asset="ETH", amount=str(10**12 + i), idempotency_key=f"load-{i}"
                )
                started = time.perf_counter()
                reply = await stub.CreatePayment(request, metadata=merchant.auth, timeout=30)
                latencies.append(time.perf_counter() - started)
                created.append(reply.payment)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return created, latencies, time.perf_counter() - started


async def main(payments: int, clients: int, burst: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="paymesh-load-"))
    with devstack.postgres_scratch_dir(work / "data") as data:
        with clean_environment(
            PAYMESH_ANVIL_BLOCK_TIME="1",
            PAYMESH_ANVIL_PORT=str(devstack.free_port()),
            PAYMESH_NATS_PORT=str(devstack.free_port()),
        ):
            mesh = start_mesh(
                data,
                ports={n: devstack.free_port() for n, _ in SERVICES},
                extra_env={**FAST_ENV, "PAYMESH_LOG_LEVEL": "WARNING"},
                log=lambda *a: None,
                only=("ledger", "listener", "notifier"),
            )
        try:
            async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
                merchant = await create_merchant(channel, fresh_xpub()[0])
            created, create_lat, create_s = await create_all(mesh.addr("ledger"), merchant, payments, clients)
            print(f"created {len(created)} payments in {create_s:.1f} s ({len(created) / create_s:.0f}/s)")

            confirmed_at: dict[str, float] = {}
            nc = await nats.connect(mesh.env["PAYMESH_NATS_URL"])

            async def on_event(msg) -> None:
                event = evpb.PaymentEvent.FromString(msg.data)
                if event.type == evpb.PAYMENT_EVENT_TYPE_CONFIRMED:
                    confirmed_at.setdefault(event.payment.payment_id, time.perf_counter())

            await nc.subscribe(f"paymesh.payments.{merchant.merchant_id}.confirmed", cb=on_event)
            # Sign everything first (10 dev accounts, sequential nonces), then
            # broadcast a burst per block.
            rpc = mesh.env["PAYMESH_ANVIL_RPC_URL"]
            async with httpx.AsyncClient(timeout=60, trust_env=False) as http:

                async def call(method, params):
                    reply = await http.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
                    return reply.json()["result"]

                gas_price = int(await call("eth_gasPrice", []), 16) * 4
                accounts = list(range(1, 10))
                nonces = {
                    a: int(await call("eth_getTransactionCount", [DEV_ADDRESSES[a], "pending"]), 16) for a in accounts
                }
                raws = []
                for i, payment in enumerate(created):
                    account = accounts[i % len(accounts)]
                    raw, _ = sign(
                        DEV_KEYS[account],
                        nonce=nonces[account],
                        chain_id=31337,
                        gas_price=gas_price,
                        gas=21_000,
                        to=payment.deposit_address,
                        value=int(payment.amount_due),
                        data="0x",
                    )
                    nonces[account] += 1
                    raws.append((payment.payment_id, raw))
                sent_at: dict[str, float] = {}
                t0 = time.perf_counter()
                timeline: list[tuple[float, int]] = []
                for start in range(0, len(raws), burst):
                    chunk = raws[start : start + burst]
                    body = [
                        {"jsonrpc": "2.0", "id": n, "method": "eth_sendRawTransaction", "params": [raw]}
                        for n, (_, raw) in enumerate(chunk)
                    ]
                    await http.post(rpc, json=body)
                    now = time.perf_counter()
                    for payment_id, _ in chunk:
                        sent_at[payment_id] = now
                    timeline.append((now - t0, len(confirmed_at)))
                    await asyncio.sleep(1.0)  # one burst per block
                deadline = time.monotonic() + 300
                while len(confirmed_at) < len(created) and time.monotonic() < deadline:
                    timeline.append((time.perf_counter() - t0, len(confirmed_at)))
                    await asyncio.sleep(0.25)
                timeline.append((time.perf_counter() - t0, len(confirmed_at)))
            await nc.drain()
        finally:
            mesh.stop()
    done = len(confirmed_at)
    if done < len(created):
        raise RuntimeError(f"only {done} of {len(created)} payments confirmed within 300 s")
    pay_lat = [confirmed_at[p] - sent_at[p] for p in confirmed_at]
    total_s = timeline[-1][0]
    c, p = summary_ms(create_lat), summary_ms(pay_lat)
    print(f"all {done} confirmed; broadcast->confirmed p50 {p['p50']:.0f} ms p99 {p['p99']:.0f} ms")
    plots = draw(create_lat, pay_lat, timeline, clients)
    return f"""## Load: 10,000 payments through the whole mesh

{len(created):,} payments created by {clients} concurrent gRPC clients, then paid from 9 anvil dev
accounts in bursts of {burst} transfers per block (anvil, 1 s blocks, 2 confirmations);
ledger, listener and notifier as separate processes on Postgres (fsync on) and NATS.

| measure | result |
|---|---:|
| CreatePayment throughput ({clients} clients) | {len(created) / create_s:,.0f}/s |
| CreatePayment latency p50 / p90 / p99 | {c["p50"]:.0f} / {c["p90"]:.0f} / {c["p99"]:.0f} ms |
| payments confirmed | {done:,} of {len(created):,} |
| broadcast → CONFIRMED event, p50 / p90 / p99 | {p["p50"]:.0f} / {p["p90"]:.0f} / {p["p99"]:.0f} ms |
| all payments confirmed after the first burst | {total_s:.1f} s |

Broadcast → confirmed includes waiting for the block and the 2-block confirmation depth
(≥ 2 s at 1 s blocks); the rest is detection and the ledger.

![CreatePayment latency](img/{plots[0]}) ![Confirmations over time](img/{plots[1]})
"""


def draw(create_lat: list[float], pay_lat: list[float], timeline: list[tuple[float, int]], clients: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist([x * 1000 for x in create_lat], bins=80, color="#3a6ea5")
    ax.set_xlabel("CreatePayment latency (ms)")
    ax.set_ylabel("calls")
    ax.set_title(f"CreatePayment, {clients} concurrent clients")
    fig.tight_layout()
    fig.savefig(IMG / "load_create_latency.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([t for t, _ in timeline], [n for _, n in timeline], color="#2a9d5c")
    ax.set_xlabel("seconds since the first burst")
    ax.set_ylabel("payments confirmed")
    ax.set_title("Payments reaching CONFIRMED over time")
    fig.tight_layout()
    fig.savefig(IMG / "load_confirmed_over_time.png", dpi=110)
    plt.close(fig)
    return "load_create_latency.png", "load_confirmed_over_time.png"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--burst", type=int, default=500)
    args = parser.parse_args()
    import uvloop

    print(write_section("load", uvloop.run(main(args.payments, args.clients, args.burst))))
