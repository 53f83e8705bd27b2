"""Sweeper benchmark: sweeps per second and the time from "confirmed" to "swept"
on anvil, everything real.

anvil mines a block every --block-time seconds (interval mining, like a real
chain; confirmations 2), the ledger and the sweeper run as their own processes
(`python -m services.ledger`, `python -m services.sweeper`, default settings
except the per-chain concurrency under test and --env), Postgres 16 with fsync
on, real NATS. Deposit addresses are funded for real on anvil (native ETH and
the TUSD ERC-20, which needs a gas top-up from the gas wallet first); this
process then publishes the transfer and head events the listener would, and
times the ledger's `confirmed` and `swept` payment events on NATS.

Phases, each bounded in time:
- burst, once per --concurrency value (a fresh sweeper process each): N
  payments become CONFIRMED at once (one head event); sweeps/s is
  N / (last swept - first confirmed), and each payment's confirmed -> swept
  time is measured (it includes queueing behind the concurrency limit);
- steady: payments are confirmed one by one at --rate per second for
  --seconds; confirmed -> swept per payment (no queueing).

    python -m bench.bench_sweeper [--native 60] [--tokens 20] [--block-time 0.5] [--rate 2] [--seconds 15]
                                  [--concurrency 16,64] [--env PAYMESH_SWEEPER_...=...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from pathlib import Path

import grpc
import nats
from eth_account import Account
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb

from bench.common import summary_ms, versions, write_section
from tests.support.ledger import (
    ADMIN_TOKEN,
    ANVIL_MNEMONIC,
    SERVICE_TOKEN_ENV,
    TOKEN_ADDRESS,
    create_merchant,
    fresh_xpub,
    publish_chain,
    publish_head,
    transfer_event,
)
from tests.support.sweeper_chain import (
    ANVIL_KEYS,
    ETHER,
    FUNDER_KEY,
    TUSD,
    Chain,
    token_transfer_data,
    write_sweeper_chains_file,
)
from tools import devstack
from tools.services import ServiceProcess

CONFIRMATIONS = 2


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Events:
    """Times of the ledger's confirmed / swept events per payment (core NATS subscription)."""

    def __init__(self) -> None:
        self.confirmed: dict[str, float] = {}
        self.swept: dict[str, float] = {}

    async def on_message(self, msg) -> None:
        now = time.perf_counter()
        event = evpb.PaymentEvent.FromString(msg.data)
        target = self.swept if msg.subject.endswith(".swept") else self.confirmed
        target.setdefault(event.payment.payment_id, now)

    async def wait_swept(self, ids: list[str], within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(i in self.swept for i in ids):
                return
            await asyncio.sleep(0.05)
        missing = [i for i in ids if i not in self.swept]
        raise RuntimeError(f"{len(missing)} of {len(ids)} payments not swept within {within:.0f} s")


class Shop:
    def __init__(self, chain: Chain, channel: grpc.aio.Channel, js) -> None:
        self.chain = chain
        self.channel = channel
        self.js = js
        self.merchant = None
        self.treasury = Account.create().address

    async def setup(self) -> None:
        xpub, account = fresh_xpub()
        self.merchant = await create_merchant(
            self.channel,
            xpub,
            derivation_path=f"m/44'/60'/{account}'",
            treasuries=[apb.Treasury(chain_id=31337, address=self.treasury)],
        )

    async def funded(self, native: int, tokens: int) -> list[tuple[str, object]]:
        """Create payments and fund their deposit addresses on anvil (pipelined).
        Returns (payment_id, transfer event) pairs, events not yet published."""
        plan = [("ETH", ETHER + i) for i in range(native)] + [("TUSD", (i + 1) * TUSD) for i in range(tokens)]
        payments = await asyncio.gather(
            *(
                self.merchant.create(asset=asset, amount=str(amount), idempotency_key=secrets.token_hex(8))
                for asset, amount in plan
            )
        )
        txs = []
        for payment, (asset, amount) in zip(payments, plan, strict=True):
            if asset == "ETH":
                txs.append((payment.deposit_address, amount, b"", 21_000))
            else:
                txs.append((TOKEN_ADDRESS, 0, token_transfer_data(payment.deposit_address, amount), 80_000))
        receipts = await self.chain.send_many(FUNDER_KEY, txs)
        out = []
        for payment, (asset, amount), receipt in zip(payments, plan, receipts, strict=True):
            token = asset == "TUSD"
            out.append(
                (
                    payment.payment_id,
                    transfer_event(
                        payment.deposit_address,
                        amount,
                        block=int(receipt["blockNumber"], 16),
                        block_hash=receipt["blockHash"],
                        tx_hash=receipt["transactionHash"],
                        log_index=int(receipt["logs"][0]["logIndex"], 16) if token else -1,
                        token=TOKEN_ADDRESS if token else "",
                    ),
                )
            )
        return out


async def main(
    native: int,
    tokens: int,
    block_time: float,
    rate: float,
    seconds: float,
    concurrencies: list[int],
    extra_env: dict[str, str],
) -> str:
    work = Path(tempfile.mkdtemp(prefix="paymesh-bench-sweeper-"))
    with devstack.postgres_scratch_dir(work / "pg") as pg_dir:
        pg = devstack.start_postgres(pg_dir, fast=False)  # fsync on: honest commits
        nats_server = devstack.start_nats(work / "nats")
        anvil = devstack.start_anvil(block_time=block_time, log_file=work / "anvil.log", silent=True)
        chain = Chain(anvil.http_url)
        ledger = None
        started_sweepers = []
        try:
            assert await chain.deploy_token(ANVIL_KEYS[0]) == TOKEN_ADDRESS
            await chain.send_token(ANVIL_KEYS[0], TOKEN_ADDRESS, Account.from_key(FUNDER_KEY).address, 10**9 * TUSD)
            chains_file = write_sweeper_chains_file(
                work / "chains.yaml", anvil.http_url, confirmations=CONFIRMATIONS, block_time=block_time
            )
            common = {
                "PAYMESH_NATS_URL": nats_server.url,
                "PAYMESH_CHAINS_FILE": str(chains_file),
                "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
                **SERVICE_TOKEN_ENV,
                "PAYMESH_LOG_LEVEL": "WARNING",
            }
            ledger = ServiceProcess(
                "services.ledger",
                {**common, "PAYMESH_DATABASE_URL": pg.create_database("ledger")},
                work / "ledger.log",
                devstack.free_port(),
            )
            await asyncio.to_thread(ledger.start)
            started_sweepers: list[ServiceProcess] = []

            def make_sweeper(env: dict[str, str]) -> ServiceProcess:
                proc = ServiceProcess(
                    "services.sweeper",
                    {
                        **common,
                        "PAYMESH_LEDGER_ADDR": f"127.0.0.1:{ledger.port}",
                        "PAYMESH_SWEEPER_MNEMONIC": ANVIL_MNEMONIC,
                        **env,
                        **extra_env,
                    },
                    work / f"sweeper-{len(started_sweepers)}.log",
                    devstack.free_port(),
                )
                started_sweepers.append(proc)
                return proc

            leftovers = 0
            nc = await nats.connect(nats_server.url)
            events = Events()
            for kind in ("confirmed", "swept"):
                await nc.subscribe(f"paymesh.payments.*.{kind}", cb=events.on_message)
            js = nc.jetstream()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}") as channel:
                    shop = Shop(chain, channel, js)
                    await shop.setup()
                    bursts = []
                    swept_tokens = 0
                    for concurrency in concurrencies:
                        # ------------------------------------------------------------ burst
                        burst = await shop.funded(native, tokens)
                        for _, event in burst:
                            await publish_chain(js, "transfer", event)
                        env = {
                            "PAYMESH_SWEEPER_CONCURRENCY": str(concurrency),
                            "PAYMESH_SWEEPER_BATCH_SIZE": str(min(concurrency, 500)),
                        }
                        sweeper = make_sweeper(env)
                        await asyncio.to_thread(sweeper.start)
                        print(f"sweeper pid {sweeper.proc.pid}, log {sweeper.log_path}", flush=True)
                        await asyncio.sleep(1.0)
                        cpu_before = process_cpu(sweeper.proc.pid)
                        head = max(e.block_number for _, e in burst) + CONFIRMATIONS - 1
                        await publish_head(js, max(head, int(await chain.rpc("eth_blockNumber"), 16)))
                        ids = [pid for pid, _ in burst]
                        await events.wait_swept(ids, within=600)
                        cpu = process_cpu(sweeper.proc.pid) - cpu_before
                        first_confirmed = min(events.confirmed[i] for i in ids)
                        elapsed = max(events.swept[i] for i in ids) - first_confirmed
                        result = {
                            "concurrency": concurrency,
                            "throughput": len(ids) / elapsed,
                            "all": summary_ms([events.swept[i] - events.confirmed[i] for i in ids]),
                            "native": summary_ms([events.swept[i] - events.confirmed[i] for i in ids[:native]]),
                            "token": summary_ms([events.swept[i] - events.confirmed[i] for i in ids[native:]]),
                            "cpu_ms": cpu * 1000 / len(ids),
                        }
                        bursts.append(result)
                        print(
                            f"burst, concurrency {concurrency}: {len(ids)} payments ({native} ETH, {tokens} TUSD) "
                            f"swept in {elapsed:.1f} s -> {result['throughput']:.2f} sweeps/s; confirmed->swept "
                            f"p50 {result['all']['p50']:.0f} ms p99 {result['all']['p99']:.0f} ms; sweeper CPU "
                            f"{result['cpu_ms']:.1f} ms/sweep",
                            flush=True,
                        )
                        # Exactness: every native deposit address at 0 wei, every token one at 0 TUSD.
                        for _, event in burst:
                            if event.token_address:
                                leftovers += await chain.token_balance(TOKEN_ADDRESS, event.to_address) != 0
                            else:
                                leftovers += await chain.balance(event.to_address) != 0
                        swept_tokens += sum((i + 1) * TUSD for i in range(tokens))
                        treasury_tokens = await chain.token_balance(TOKEN_ADDRESS, shop.treasury)
                        assert treasury_tokens == swept_tokens, (treasury_tokens, swept_tokens)
                        if concurrency != concurrencies[-1]:
                            await asyncio.to_thread(sweeper.terminate)
                    # ---------------------------------------------------------------- steady
                    count = max(1, int(rate * seconds))
                    steady = await shop.funded(count, 0)
                    deepest = max(e.block_number for _, e in steady) + CONFIRMATIONS - 1
                    await publish_head(js, max(deepest, int(await chain.rpc("eth_blockNumber"), 16)))
                    started = time.perf_counter()
                    for n, (_, event) in enumerate(steady):
                        delay = started + n / rate - time.perf_counter()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        await publish_chain(js, "transfer", event)  # confirmed on arrival: the head is deep
                    steady_ids = [pid for pid, _ in steady]
                    await events.wait_swept(steady_ids, within=300)
                    steady_lat = summary_ms([events.swept[i] - events.confirmed[i] for i in steady_ids])
                    print(
                        f"steady {rate:g}/s for {seconds:g} s ({count} ETH payments, concurrency "
                        f"{concurrencies[-1]}): confirmed->swept p50 {steady_lat['p50']:.0f} ms p90 "
                        f"{steady_lat['p90']:.0f} ms p99 {steady_lat['p99']:.0f} ms max {steady_lat['max']:.0f} ms",
                        flush=True,
                    )
            finally:
                await nc.drain()
        finally:
            for proc in (*started_sweepers, ledger):
                if proc is not None and proc.proc is not None and proc.proc.poll() is None:
                    proc.terminate()
            await chain.aclose()
            anvil.stop()
            nats_server.stop()
            pg.stop()
    settings = ", ".join(f"{k}={v}" for k, v in extra_env.items()) or "otherwise default settings"
    rows = "\n".join(
        f"| burst, concurrency {b['concurrency']}: {native} ETH + {tokens} TUSD confirmed at once | {native + tokens} "
        f"| **{b['throughput']:.2f}** | {b['all']['p50']:.0f} / {b['native']['p50']:.0f} / {b['token']['p50']:.0f} "
        f"| {b['all']['p90']:.0f} | {b['all']['p99']:.0f} | {b['all']['max']:.0f} | {b['cpu_ms']:.1f} |"
        for b in bursts
    )
    return f"""## Sweeper

Confirmed funds to the merchant's treasury: the sweeper (its own process,
per-chain concurrency as shown, {settings}) claims confirmed payments from
the ledger (its own process, Postgres 16 with fsync on), signs, records the
transaction in the ledger before broadcasting it, waits for the receipt and
{CONFIRMATIONS} confirmations, then completes the sweep. anvil mines a block every
{block_time:g} s (interval mining, like a real chain). ERC-20 (TUSD) sweeps first top
up gas from the gas wallet and wait for that top-up to be mined. Deposit
addresses are funded for real; this process plays the listener (transfer +
head events). Times run from the ledger's `confirmed` to its `swept` payment
event (both read on NATS). All on the same 2 cores.

| phase | payments | sweeps/s | p50 ms (all / ETH / TUSD) | p90 ms | p99 ms | max ms | sweeper CPU ms/sweep |
|---|---:|---:|---:|---:|---:|---:|---:|
{rows}
| steady: {rate:g} ETH payments confirmed per second for {seconds:g} s | {count} | {rate:g} | {steady_lat["p50"]:.0f} | {steady_lat["p90"]:.0f} | {steady_lat["p99"]:.0f} | {steady_lat["max"]:.0f} | |

How to read it: one native sweep needs its block plus {CONFIRMATIONS - 1} more, about
{CONFIRMATIONS} x {block_time:g} s plus polling, which is the steady-state latency; a token sweep
adds one block for the top-up. In a burst, payments queue behind the per-chain
concurrency limit, so throughput is about concurrency / (seconds per sweep):
bound by the chain's block time, not by the sweeper's CPU. After every burst,
{leftovers} deposit addresses held anything (native: exactly 0 wei expected;
tokens: 0 TUSD) and the treasury held exactly the swept tokens.

Versions: {versions([devstack.anvil_binary(), "--version"])}.
"""  # noqa: E501


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--native", type=int, default=60)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--block-time", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--concurrency",
        default="16,64",
        help="per-chain concurrency of each burst run, comma-separated (16 is the default setting)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra sweeper environment, e.g. PAYMESH_SWEEPER_CONCURRENCY=64",
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    import uvloop

    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    report = uvloop.run(main(args.native, args.tokens, args.block_time, args.rate, args.seconds, concurrencies, extra))
    print(write_section("sweeper", report))
