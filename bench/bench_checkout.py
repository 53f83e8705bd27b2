"""Checkout benchmarks: payment pages served per second, and 1,000 live-status
watchers (server-sent events) on one checkout process: the memory each costs and
the delay from the ledger's payment event to each watcher's update.

The ledger and the checkout run as their own processes (as in production) against
Postgres with fsync on and a real NATS; the load generator is this process, on the
same 2 cores. Bounded: each phase runs for a fixed time or a fixed count, and every
wait has a deadline.

    python -m bench.bench_checkout [--seconds 10] [--concurrency 32] [--watchers 1000] [--payments 100]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import httpx
import nats
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payment_service_pb2 as spb

from bench.common import summary_ms, versions, write_section
from tests.support.ledger import (
    ADMIN_TOKEN,
    SERVICE_TOKEN_ENV,
    create_merchant,
    fresh_xpub,
    next_block,
    publish_chain,
    transfer_event,
    write_chains_file,
)
from tools import devstack
from tools.services import ServiceProcess


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wrk_load(url: str, seconds: float, concurrency: int) -> tuple[int, dict[str, float]] | None:
    """Pages/s and latency percentiles (ms) from `wrk` (Debian's package: a C load
    generator, so the client's own CPU does not cap what is measured); None without it."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    out = subprocess.run(
        [wrk, "-t2", f"-c{concurrency}", f"-d{max(1, int(seconds))}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        value, unit = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert errors is None, out
    return round(rate), {"p50": ms("50%"), "p90": ms("90%"), "p99": ms("99%")}


async def page_load(base: str, tokens: list[str], seconds: float, concurrency: int) -> tuple[int, list[float]]:
    """GET /pay/<token> for `seconds` from `concurrency` clients (keep-alive connections)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def worker(w: int) -> None:
            n = w
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                reply = await client.get(f"/pay/{tokens[n % len(tokens)]}")
                latencies.append(time.perf_counter() - started)
                assert reply.status_code == 200, reply.status_code
                n += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    return round(len(latencies) / elapsed), latencies


async def watchers(
    base: str, checkout_pid: int, nats_url: str, payments: list, per_payment: int, merchant_id: str
) -> dict:
    """Open `per_payment` live streams per payment, then change every payment (a
    transfer seen on chain) and time each stream's update against the ledger's event."""
    count = len(payments) * per_payment
    opened = asyncio.Event()
    ready = 0
    updates: dict[int, float] = {}
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    rss_before = rss_kib(checkout_pid)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=httpx.Timeout(10, read=120)) as client:

        async def watch(i: int, token: str) -> None:
            nonlocal ready
            async with client.stream("GET", f"/pay/{token}/live") as reply:
                assert reply.status_code == 200
                ready += 1
                if ready == count:
                    opened.set()
                async for line in reply.aiter_lines():
                    # The stream starts with the page as it is (pending); the update that
                    # counts is the one showing the transfer seen on chain.
                    if 'data-status="detected"' in line:
                        updates.setdefault(i, time.time())
                        return

        tasks = [asyncio.create_task(watch(i, payments[i % len(payments)].checkout_token)) for i in range(count)]
        await asyncio.wait_for(opened.wait(), timeout=120)
        await asyncio.sleep(2)  # every stream's first view has been read (the checkout skips it)
        rss_after = rss_kib(checkout_pid)
        event_times: dict[str, float] = {}
        nc = await nats.connect(nats_url)

        async def on_event(msg) -> None:
            event = evpb.PaymentEvent.FromString(msg.data)
            event_times.setdefault(event.payment.checkout_token, time.time())

        await nc.subscribe(f"paymesh.payments.{merchant_id}.detected", cb=on_event)
        js = nc.jetstream()
        block = next_block()
        for p in payments:
            await publish_chain(js, "transfer", transfer_event(p.deposit_address, 1, block=block))
        # Bounded: each watcher ends at its first update, or all are cut off after 120 s.
        await asyncio.wait(tasks, timeout=120)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.drain()
    delays = [
        updates[i] - event_times[payments[i % len(payments)].checkout_token]
        for i in updates
        if payments[i % len(payments)].checkout_token in event_times
    ]
    return {
        "count": count,
        "updated": len(updates),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "delays": delays,
    }


async def main(seconds: float, concurrency: int, watcher_count: int, payment_count: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="paymesh-bench-checkout-"))
    with devstack.postgres_scratch_dir(work / "pg") as pg_dir:
        pg = devstack.start_postgres(pg_dir, fast=False)
        nats_server = devstack.start_nats(work / "nats")
        procs: list[ServiceProcess] = []
        try:
            chains = write_chains_file(work / "chains.yaml")
            ledger_port, checkout_port = devstack.free_port(), devstack.free_port()
            env = {
                "PAYMESH_DATABASE_URL": pg.create_database("bench"),
                "PAYMESH_NATS_URL": nats_server.url,
                "PAYMESH_CHAINS_FILE": str(chains),
                "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
                **SERVICE_TOKEN_ENV,
                "PAYMESH_LOG_LEVEL": "WARNING",
                "PAYMESH_LEDGER_ADDR": f"127.0.0.1:{ledger_port}",
                "PAYMESH_CHECKOUT_BASE_URL": f"http://127.0.0.1:{checkout_port}",
            }
            ledger = ServiceProcess("services.ledger", env, work / "ledger.log", ledger_port).start()
            procs.append(ledger)
            checkout = ServiceProcess("services.checkout", env, work / "checkout.log", checkout_port).start()
            procs.append(checkout)
            assert checkout.proc is not None
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger_port}") as channel:
                merchant = await create_merchant(channel, fresh_xpub()[0], name="Bench shop")
                payments = []
                for i in range(payment_count):
                    reply = await merchant.payments.CreatePayment(
                        spb.CreatePaymentRequest(
                            chain_id=31337, asset="ETH", amount=str(10**16 + i), description=f"order {i}"
                        ),
                        metadata=merchant.auth,
                    )
                    payments.append(reply.payment)
            base = f"http://127.0.0.1:{checkout_port}"
            tokens = [p.checkout_token for p in payments]
            await page_load(base, tokens, 2, 8)  # warm-up (and every payment's QR code made once)
            measured = wrk_load(f"{base}/pay/{tokens[0]}", seconds, concurrency)
            if measured is not None:
                client = "wrk (Debian's package), 2 threads"
                rate, pages = measured
            else:
                client = "httpx in this process (install Debian's wrk for a client that costs less CPU)"
                rate, latencies = await page_load(base, tokens, seconds, concurrency)
                pages = summary_ms(latencies)
            print(f"pages: {rate}/s at {concurrency} clients, p50 {pages['p50']:.1f} ms p99 {pages['p99']:.1f} ms")
            live = await watchers(
                base, checkout.proc.pid, nats_server.url, payments, watcher_count // payment_count, merchant.merchant_id
            )
            delay = summary_ms(live["delays"])
            per_watcher = (live["rss_after_kib"] - live["rss_before_kib"]) / live["count"]
            print(
                f"watchers: {live['count']} open, {live['updated']} updated; {per_watcher:.1f} KiB each; "
                f"event -> watcher p50 {delay['p50']:.1f} ms p99 {delay['p99']:.1f} ms"
            )
        finally:
            for proc in reversed(procs):
                try:
                    proc.terminate(timeout=20)
                except Exception:  # noqa: BLE001 - make sure the rest stops
                    proc.kill()
            nats_server.stop()
            pg.stop()
    return f"""## Checkout

Payment pages: `GET /pay/<checkout token>` (the ledger's `GetCheckout` over gRPC,
page model, Jinja2 render with the EIP-681 QR code drawn as SVG, security headers)
from {concurrency} concurrent keep-alive connections for {seconds:g} s (client: {client}),
checkout and ledger as their own processes, Postgres with fsync on, the client on
the same 2 cores. Each payment's QR code is made once and kept (a page's
main cost otherwise, ~4.5 ms; `services/checkout/page.py`), as for a customer's
reloads and live updates. Target: ≥ 500 pages/s.

| connections | pages/s | p50 ms | p90 ms | p99 ms |
|---:|---:|---:|---:|---:|
| {concurrency} | {rate:,} | {pages["p50"]:.1f} | {pages["p90"]:.1f} | {pages["p99"]:.1f} |

Live status: {live["count"]:,} server-sent-event streams open at once on one checkout
process ({watcher_count // payment_count} per payment, {payment_count} payments; each stream is one
`WatchCheckout` gRPC stream to the ledger). The checkout's resident memory grew
from {live["rss_before_kib"] / 1024:.1f} MiB to {live["rss_after_kib"] / 1024:.1f} MiB with them open:
**{per_watcher:.1f} KiB per watcher**. Then a transfer was seen for every payment at once ({payment_count} `detected`
events): {live["updated"]:,} of {live["count"]:,} watchers got their update; delay from the ledger's
`detected` event on NATS to the update reaching the watcher (ledger stream → checkout
→ re-render → SSE): **p50 {delay["p50"]:.0f} ms, p90 {delay["p90"]:.0f} ms, p99 {delay["p99"]:.0f} ms**
(max {delay["max"]:.0f} ms): each update is one
re-read of the payment by the ledger and one render by the checkout, for all
watchers at once. The ledger keeps one NATS subscription per merchant and hands each
event to the watchers of its payment only; with one subscription per watcher, NATS sent
every event once per watcher and cut the ledger off as a slow consumer (found by this run).

Versions: {versions(["psql", "--version"], [str(Path(__file__).parents[1] / ".venv/bin/nats-server"), "--version"])}.
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--payments", type=int, default=100)
    args = parser.parse_args()
    import uvloop

    report = uvloop.run(main(args.seconds, args.concurrency, args.watchers, args.payments))
    print(write_section("checkout", report))
