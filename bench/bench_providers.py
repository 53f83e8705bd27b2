"""RPC providers: detection latency with one provider and with two, side by side in one
run, and what a provider's death costs (issue 18).

The same set-up as bench_listener's latency phase (real anvil with WebSocket
`newHeads`, NATS JetStream, the ledger and the listener as their own processes,
Postgres with fsync on, one payment per block, ETH): three listener runs one after
the other, each on its own KV buckets:

1. one provider: `rpc_url` = anvil;
2. two healthy providers: `rpc:` = anvil through a loopback TCP proxy (provider A),
   and anvil (provider B): the pool's overhead, and the proxy's hop on A's share;
3. failover: the same two, and provider A's proxy is closed (connections cut,
   nothing listening) halfway through: the detection latency of every payment after
   that, the time from the cut to the first payment detected, and the failovers the
   listener counted.

Every phase is bounded in count and time; everything is on loopback.

    python -m bench.bench_providers [--samples 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import grpc
import httpx
import nats

from bench.bench_listener import Events, Listener, Node, create_payments, payment_tx
from bench.common import stop_all, summary_ms, write_section
from tests.support.chain import TcpProxy
from tests.support.ledger import ADMIN_TOKEN, SERVICE_TOKEN_ENV, create_merchant, fresh_xpub, write_chains_file
from tools import devstack, pay
from tools.services import ServiceProcess

CHAIN_ID = 31337


def failovers(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("paymesh_rpc_failovers_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def detect(node: Node, events: Events, payments, start: int, count: int, cut=None) -> tuple[list, float]:
    """Pay payments[start:start+count], one block each; latencies (s) block mined ->
    ledger's DETECTED event; `cut` (a coroutine function) runs before the first one,
    and the seconds from it to the first detection are returned too."""
    out: list[float] = []
    cut_at = 0.0
    first_after_cut = 0.0
    await node("evm_setAutomine", False)
    try:
        for i, p in enumerate(payments[start : start + count]):
            if cut is not None and i == 0:
                await cut()
                cut_at = time.perf_counter()
            await node("eth_sendTransaction", payment_tx(p, 1000, pay.DEV_ADDRESSES[1 + (start + i) % 9]))
            await asyncio.sleep(0.02)
            started = time.perf_counter()
            await node("evm_mine")
            await events.until(lambda pid=p.payment_id: pid in events.payment_at, 30)
            out.append(events.payment_at[p.payment_id] - started)
            if cut is not None and i == 0:
                first_after_cut = events.payment_at[p.payment_id] - cut_at
    finally:
        await node("evm_setAutomine", True)
    return out, first_after_cut


async def run_listener(env: dict, work: Path, name: str, chains: Path) -> tuple[ServiceProcess, Listener, int]:
    metrics = devstack.free_port()
    proc = ServiceProcess("services.listener", env, work / f"listener-{name}.log", devstack.free_port())
    await asyncio.to_thread(
        proc.start,
        {
            "PAYMESH_CHAINS_FILE": str(chains),
            "PAYMESH_METRICS_PORT": str(metrics),
            "PAYMESH_STATE_BUCKET": f"bench-{name}-state",
            "PAYMESH_LEASE_BUCKET": f"bench-{name}-leases",
        },
    )
    listener = Listener(proc)
    await listener.wait(lambda s: s.leader, 30)
    return proc, listener, metrics


async def main(samples: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="paymesh-bench-providers-"))
    load_before = os.getloadavg()[0]
    with devstack.postgres_scratch_dir(work / "pg") as pg_dir:
        pg = devstack.start_postgres(pg_dir, fast=False)
        nats_server = devstack.start_nats(work / "nats")
        anvil = devstack.start_anvil(log_file=work / "anvil.log", silent=True)
        procs: list[ServiceProcess] = []
        node = Node(anvil.http_url)
        proxy = TcpProxy(anvil.port)
        await proxy.open()
        nc = None
        result: dict = {}
        try:
            pay.ensure_test_token(anvil.http_url)
            one = write_chains_file(work / "one.yaml", rpc_url=anvil.http_url, ws_url=anvil.ws_url)
            two = write_chains_file(
                work / "two.yaml", rpc_urls=[f"http://127.0.0.1:{proxy.port}", anvil.http_url], ws_url=anvil.ws_url
            )
            env = {
                "PAYMESH_DATABASE_URL": pg.create_database("bench"),
                "PAYMESH_NATS_URL": nats_server.url,
                "PAYMESH_CHAINS_FILE": str(one),
                "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
                **SERVICE_TOKEN_ENV,
                "PAYMESH_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                "PAYMESH_CHAIN_IDS": f"[{CHAIN_ID}]",
                "PAYMESH_RPC_TIMEOUT_SECONDS": "2",
            }
            ledger = ServiceProcess("services.ledger", env, work / "ledger.log", devstack.free_port())
            procs.append(ledger)
            await asyncio.to_thread(ledger.start)
            env["PAYMESH_LEDGER_ADDR"] = f"127.0.0.1:{ledger.port}"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}") as channel:
                xpub, account = fresh_xpub()
                merchant = await create_merchant(channel, xpub, derivation_path=f"m/44'/60'/{account}'")
            nc = await nats.connect(nats_server.url)
            events = Events()
            await events.start(nc, merchant.merchant_id)
            payments = await create_payments(ledger.port, merchant, samples * 4, "prov")

            for name, chains in (("one", one), ("two", two)):
                proc, listener, _ = await run_listener(env, work, name, chains)
                procs.append(proc)
                await listener.wait(lambda s: s.watched_addresses >= len(payments), 60)
                offset = 0 if name == "one" else samples
                latencies, _ = await detect(node, events, payments, offset, samples)
                result[name] = summary_ms(latencies)
                await listener.close()
                await asyncio.to_thread(proc.terminate)
                procs.remove(proc)

            proc, listener, metrics = await run_listener(env, work, "failover", two)
            procs.append(proc)
            await listener.wait(lambda s: s.watched_addresses >= len(payments), 60)
            half = samples // 2
            healthy, _ = await detect(node, events, payments, 2 * samples, half)
            before = await asyncio.to_thread(failovers, metrics)
            after, first = await detect(node, events, payments, 2 * samples + half, samples - half, cut=proxy.close)
            status = await listener.status()
            result["failover"] = {
                "before": summary_ms(healthy),
                "after": summary_ms(after),
                "first_detection_after_cut_ms": first * 1000,
                "failovers": await asyncio.to_thread(failovers, metrics) - before,
                "states": [(e.name.split()[0], e.state) for e in status.endpoints],
            }
            await listener.close()
        finally:
            if nc is not None:
                await nc.drain()
            await node.client.aclose()
            await proxy.close()
            stop_all(procs, anvil, nats_server, pg)
    result["samples"] = samples
    result["load"] = (load_before, os.getloadavg()[0])
    return result


def section(r: dict) -> str:
    one, two, fo = r["one"], r["two"], r["failover"]

    def row(label: str, s: dict) -> str:
        return f"| {label} | {s['p50']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['max']:.1f} |"

    verdict = (
        "no worse than with one"
        if two["p50"] <= one["p50"] * 1.1 + 1 and two["p99"] <= one["p99"] * 1.25 + 2
        else "**worse than with one**"
    )
    states = ", ".join(f"{n} {s}" for n, s in fo["states"])
    return f"""## RPC providers: one against two, and a provider's death (issue 18)

`python -m bench.bench_providers --samples {r["samples"]}`: the listener's detection path
(anvil with WebSocket `newHeads`, NATS, the ledger and the listener as processes,
Postgres with fsync on; one ETH payment per block, the clock from `evm_mine` to the
ledger's DETECTED event). "Two providers": provider A is anvil through a loopback TCP
proxy, B is anvil itself; in the failover run A's proxy is cut halfway (connections
dropped, nothing listening on its port).

| run | p50 ms | p90 ms | p99 ms | max ms |
|---|---:|---:|---:|---:|
{row("one provider", one)}
{row("two healthy providers", two)}
{row("two, before provider A dies", fo["before"])}
{row("two, after provider A died", fo["after"])}

Reading: detection latency with two healthy providers is {verdict}
({two["p50"]:.1f} against {one["p50"]:.1f} ms at p50, {two["p99"]:.1f} against
{one["p99"]:.1f} ms at p99). When provider A died, the first payment after the cut
was detected {fo["first_detection_after_cut_ms"]:.0f} ms after it (block mined → DETECTED
included); the listener counted {fo["failovers"]:.0f} failover(s) (calls that failed on A and
were answered by B), and the endpoints ended as: {states}. Load average
{r["load"][0]:.2f} before, {r["load"][1]:.2f} after.
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=60)
    args = parser.parse_args()
    import uvloop

    report = uvloop.run(main(args.samples))
    print(write_section("providers", section(report)))
