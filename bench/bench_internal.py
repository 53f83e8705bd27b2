"""What reading internal transfers costs the listener (chains.yaml `internal_transfers`).

Busy blocks are mined on a real anvil: each holds `--txs` transactions to
tools/contracts/TestForwarder.sol's `split`, each paying `--fanout` deposit
addresses with contract calls (internal transfers only: no block body or log shows
them). A listener with `debug_trace` follows the chain live while they are mined,
and the ledger must credit every one of those payments (checked in its database).

Then, for each setting ("" = off, "debug_trace", "trace_block"), a fresh listener
process (own KV buckets) rescans the same blocks through its `Rescan` RPC; the
scan time and the transfers it found are the figures. Everything (anvil, NATS,
Postgres, ledger, listener, this generator) shares the machine; bounded in count
and time.

    python -m bench.bench_internal [--blocks 100] [--txs 20] [--fanout 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import asyncpg
import grpc
from paymesh.listener.v1 import listener_service_pb2 as lpb

from bench.bench_listener import AUTH, CHAIN_ID, Listener, Node, create_payments
from bench.common import stop_all, write_section
from tests.support.chain import Chain, calldata
from tests.support.ledger import ADMIN_TOKEN, SERVICE_TOKEN_ENV, create_merchant, fresh_xpub, write_chains_file
from tools import devstack, pay
from tools.services import ServiceProcess

SETTINGS = ("", "debug_trace", "trace_block")


async def mine_busy_blocks(node: Node, forwarder: str, payments: list, txs: int, fanout: int) -> tuple[int, int]:
    """Blocks of `txs` split calls each; returns (first block, last block)."""
    await node("evm_setAutomine", False)
    first = last = None
    try:
        per_block = txs * fanout
        for b in range(len(payments) // per_block):
            calls = []
            for t in range(txs):
                group = payments[b * per_block + t * fanout : b * per_block + (t + 1) * fanout]
                sender = pay.DEV_ADDRESSES[1 + (t % 8)]
                calls.append(
                    (
                        "eth_sendTransaction",
                        [
                            {
                                "from": sender,
                                "to": forwarder,
                                "value": hex(1000 * len(group)),
                                "gas": hex(60_000 * fanout),
                                "data": "0x"
                                + calldata(
                                    "split(address[],uint256[])",
                                    [p.deposit_address for p in group],
                                    [1000] * len(group),
                                ).hex(),
                            }
                        ],
                    )
                )
            await node.batch(calls)
            await node("evm_mine")
            last = int(await node("eth_blockNumber"), 16)
            first = first if first is not None else last
    finally:
        await node("evm_setAutomine", True)
    return first, last


async def rescan(listener: Listener, first: int, last: int) -> tuple[float, lpb.RescanResponse]:
    started = time.perf_counter()
    reply = await listener.stub.Rescan(
        lpb.RescanRequest(chain_id=CHAIN_ID, from_block=first, to_block=last), metadata=AUTH, timeout=600
    )
    return time.perf_counter() - started, reply


async def trace_call_ms(node: Node, number: int, repeat: int = 10) -> dict[str, float]:
    """Median time of one call per method on one busy block, straight to the node."""
    block = await node("eth_getBlockByNumber", hex(number), False)
    calls = {
        "eth_getBlockByNumber (full)": [hex(number), True],
        "debug_traceBlockByHash": [block["hash"], {"tracer": "callTracer"}],
        "trace_block": [hex(number)],
    }
    out = {}
    for method, params in calls.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            await node(method.split(" ")[0], *params)
            times.append((time.perf_counter() - started) * 1000)
        out[method] = sorted(times)[len(times) // 2]
    return out


async def start_listener(env: dict, work: Path, setting: str, tag: str) -> tuple[ServiceProcess, Listener]:
    chains = write_chains_file(
        work / f"chains-{tag}.yaml", rpc_url=env["_RPC"], ws_url=env["_WS"], internal_transfers=setting
    )
    proc_env = {k: v for k, v in env.items() if not k.startswith("_")}
    proc_env.update(
        {
            "PAYMESH_CHAINS_FILE": str(chains),
            "PAYMESH_STATE_BUCKET": f"state-{tag}",
            "PAYMESH_LEASE_BUCKET": f"leases-{tag}",
            "PAYMESH_MAX_BACKFILL_BLOCKS": "1",
        }
    )
    proc = ServiceProcess("services.listener", proc_env, work / f"listener-{tag}.log", devstack.free_port())
    await asyncio.to_thread(proc.start)
    listener = Listener(proc)
    await listener.wait(lambda s: s.leader and s.watched_addresses > 0 and s.cursor >= s.head, 60)
    return proc, listener


async def main(args) -> str:
    work = Path(tempfile.mkdtemp(prefix="paymesh-bench-internal-"))
    count = args.blocks * args.txs * args.fanout
    with devstack.postgres_scratch_dir(work / "pg") as pg_dir:
        pg = devstack.start_postgres(pg_dir, fast=False)
        nats_server = devstack.start_nats(work / "nats")
        anvil = devstack.start_anvil(log_file=work / "anvil.log", silent=True)
        node = Node(anvil.http_url)
        procs: list[ServiceProcess] = []
        scans: dict[str, tuple[float, lpb.RescanResponse]] = {}
        try:
            database_url = pg.create_database("bench")
            env = {
                "PAYMESH_DATABASE_URL": database_url,
                "PAYMESH_NATS_URL": nats_server.url,
                "PAYMESH_CHAINS_FILE": str(write_chains_file(work / "chains.yaml", rpc_url=anvil.http_url)),
                "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
                **SERVICE_TOKEN_ENV,
                "PAYMESH_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                "PAYMESH_CHAIN_IDS": f"[{CHAIN_ID}]",
                "_RPC": anvil.http_url,
                "_WS": anvil.ws_url,
            }
            ledger = ServiceProcess(
                "services.ledger",
                {k: v for k, v in env.items() if not k.startswith("_")},
                work / "ledger.log",
                devstack.free_port(),
            )
            procs.append(ledger)
            await asyncio.to_thread(ledger.start)
            env["PAYMESH_LEDGER_ADDR"] = f"127.0.0.1:{ledger.port}"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}") as channel:
                xpub, account = fresh_xpub()
                merchant = await create_merchant(channel, xpub, derivation_path=f"m/44'/60'/{account}'")
            payments = [
                p for p in await create_payments(ledger.port, merchant, count * 3 // 2, "int") if p.asset == "ETH"
            ][:count]
            assert len(payments) == count, (len(payments), count)
            chain = Chain(anvil.http_url)
            try:
                forwarder = await chain.deploy_forwarder()
            finally:
                await chain.aclose()

            live_proc, live = await start_listener(env, work, "debug_trace", "live")
            procs.append(live_proc)
            mining_started = time.perf_counter()
            first, last = await mine_busy_blocks(node, forwarder, payments, args.txs, args.fanout)
            mined_s = time.perf_counter() - mining_started
            await live.wait(lambda s: s.cursor >= last, 300, interval=0.05)
            conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                deadline = time.monotonic() + 120
                credited = 0
                while time.monotonic() < deadline:
                    credited = await conn.fetchval("SELECT count(*) FROM transfers WHERE log_index <= -2")
                    if credited >= count:
                        break
                    await asyncio.sleep(0.2)
            finally:
                await conn.close()
            live_s = time.perf_counter() - mining_started
            print(
                f"live: {count:,} internal transfers in {last - first + 1} blocks mined in {mined_s:.1f} s; "
                f"the ledger had credited {credited:,} of them {live_s:.1f} s after mining began"
            )
            await live.close()
            live_proc.terminate(timeout=20)
            procs.remove(live_proc)

            per_call = await trace_call_ms(node, last)
            print("one call on a busy block: " + ", ".join(f"{m} {ms:.1f} ms" for m, ms in per_call.items()))
            for setting in SETTINGS:
                proc, listener = await start_listener(env, work, setting, setting or "off")
                procs.append(proc)
                scans[setting] = await rescan(listener, first, last)
                seconds, reply = scans[setting]
                print(
                    f"rescan with internal_transfers={setting!r}: {reply.blocks_scanned} blocks in {seconds:.2f} s "
                    f"({reply.blocks_scanned / seconds:,.0f} blocks/s), {reply.transfers_published:,} transfers"
                )
                await listener.close()
                proc.terminate(timeout=20)
                procs.remove(proc)
        finally:
            await node.client.aclose()
            stop_all(procs, anvil, nats_server, pg)

    blocks = last - first + 1
    rows = []
    for setting in SETTINGS:
        seconds, reply = scans[setting]
        rows.append(
            f"| `{setting or '(empty: off)'}` | {seconds:.2f} s | {blocks / seconds:,.0f} blocks/s | "
            f"{reply.transfers_published:,} of {count:,} |"
        )
    off_s, on_s, trace_s = scans[""][0], scans["debug_trace"][0], scans["trace_block"][0]
    per_call_text = ", ".join(f"`{m}` {ms:.1f} ms" for m, ms in per_call.items())
    return f"""## Internal transfers (listener tracing)

Native coin sent by contracts is seen only in call traces (`internal_transfers` in
`chains.yaml`). `python -m bench.bench_internal --blocks {args.blocks} --txs {args.txs} --fanout {args.fanout}`:
{blocks} blocks, each with {args.txs} transactions to `TestForwarder.split` paying {args.fanout}
deposit addresses each: {count:,} internal transfers, nothing in any block body or log.

| `internal_transfers` | rescan of the {blocks} blocks | rate | transfers found |
|---|---:|---:|---:|
{chr(10).join(rows)}

- Without tracing none of these payments is seen. With it the listener asks one trace per
  non-empty block (10 blocks per JSON-RPC batch, 4 batches in flight); `debug_trace` took
  {on_s / off_s:.1f}× and `trace_block` {trace_s / off_s:.1f}× the scan time without tracing (which
  also publishes nothing: the traced scans include sending {count:,} transfer events to NATS).
- The difference is the node's: one call on one of these blocks, straight to anvil (median
  of 10): {per_call_text}.
  anvil re-executes the block for `debug_traceBlockByHash` and answers
  `trace_block` from what it kept, so the local `chains.yaml` uses `trace_block`. On a
  provider, traces are usually billed and slower than block bodies: it is opt-in per chain.
- Live: a listener with `debug_trace` followed the chain while the blocks were mined
  ({mined_s:.1f} s of mining); the ledger had credited {credited:,} of the {count:,} payments
  {live_s:.1f} s after mining began.
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--txs", type=int, default=20)
    parser.add_argument("--fanout", type=int, default=5)
    args = parser.parse_args()
    import uvloop

    report = uvloop.run(main(args))
    print(write_section("internal", report))
