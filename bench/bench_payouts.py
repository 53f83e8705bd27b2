"""Payouts benchmark: payouts per second and the time from "created" to "confirmed"
on anvil, everything real.

anvil mines a block every --block-time seconds (interval mining; confirmations 2),
the ledger and the sweeper run as their own processes (`python -m services.ledger`,
`python -m services.sweeper`, default settings), Postgres 16 with fsync on, real
NATS. Each merchant's payout wallet is funded for real on anvil; payouts of ETH go
to fresh addresses. Times are the ledger's `payout_created` and `payout_confirmed`
events on NATS. Afterwards every destination is checked on chain: exactly its
amount, once.

Phases, each bounded in time:
- single: --single payouts of one merchant, each its own CreatePayout, all at once;
- batch: one CreatePayoutBatch of --batch destinations, one merchant;
- wallets: --wallets merchants with --per-wallet payouts each, all at once.

    python -m bench.bench_payouts [--block-time 0.5] [--single 20] [--batch 50] [--wallets 5] [--per-wallet 10]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import grpc
import nats
from eth_account import Account
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payout_service_pb2 as pspb
from paymesh.ledger.v1 import payout_service_pb2_grpc as psgrpc

from bench.common import summary_ms, versions, write_section
from tests.support.ledger import ADMIN_TOKEN, ANVIL_MNEMONIC, SERVICE_TOKEN_ENV, create_merchant, fresh_xpub
from tests.support.sweeper_chain import ETHER, FUNDER_KEY, Chain, write_sweeper_chains_file
from tools import devstack
from tools.services import ServiceProcess

CONFIRMATIONS = 2
AMOUNT = 10**15  # 0.001 ETH per payout (+ its index, so every amount differs)


class Events:
    """Times of the ledger's payout_created / payout_confirmed events per payout."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        self.confirmed: dict[str, float] = {}

    async def on_message(self, msg) -> None:
        now = time.perf_counter()
        event = evpb.PaymentEvent.FromString(msg.data)
        target = self.confirmed if msg.subject.endswith("payout_confirmed") else self.created
        target.setdefault(event.payout.payout_id, now)

    async def wait_confirmed(self, ids: list[str], within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(i in self.confirmed for i in ids):
                return
            await asyncio.sleep(0.05)
        missing = [i for i in ids if i not in self.confirmed]
        raise RuntimeError(f"{len(missing)} of {len(ids)} payouts not confirmed within {within:.0f} s")


async def new_merchant(channel: grpc.aio.Channel, chain: Chain, funds: int):
    xpub, account = fresh_xpub()
    merchant = await create_merchant(channel, xpub, derivation_path=f"m/44'/60'/{account}'")
    api = psgrpc.PayoutServiceStub(channel)
    wallet = (await api.GetPayoutWallet(pspb.GetPayoutWalletRequest(chain_id=31337), metadata=merchant.auth)).address
    await chain.send(FUNDER_KEY, wallet, funds)
    return merchant, api


async def main(block_time: float, single: int, batch: int, wallets: int, per_wallet: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="paymesh-bench-payouts-"))
    rows = []
    wrong = 0
    with devstack.postgres_scratch_dir(work / "pg") as pg_dir:
        pg = devstack.start_postgres(pg_dir, fast=False)  # fsync on: honest commits
        nats_server = devstack.start_nats(work / "nats")
        anvil = devstack.start_anvil(block_time=block_time, log_file=work / "anvil.log", silent=True)
        chain = Chain(anvil.http_url)
        procs: list[ServiceProcess] = []
        try:
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
            procs.append(ledger)
            await asyncio.to_thread(ledger.start)
            sweeper = ServiceProcess(
                "services.sweeper",
                {
                    **common,
                    "PAYMESH_LEDGER_ADDR": f"127.0.0.1:{ledger.port}",
                    "PAYMESH_SWEEPER_MNEMONIC": ANVIL_MNEMONIC,
                },
                work / "sweeper.log",
                devstack.free_port(),
            )
            procs.append(sweeper)
            await asyncio.to_thread(sweeper.start)
            nc = await nats.connect(nats_server.url)
            events = Events()
            for kind in ("payout_created", "payout_confirmed"):
                await nc.subscribe(f"paymesh.payments.*.{kind}", cb=events.on_message)
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}") as channel:

                    async def measure(name: str, plan: list[tuple[object, list[tuple[str, int]]]], batched: bool):
                        """plan: (merchant handle + api, [(destination, amount)]) per merchant."""
                        nonlocal wrong
                        started = time.perf_counter()

                        async def create(entry):
                            (merchant, api), items = entry
                            if batched:
                                reply = await api.CreatePayoutBatch(
                                    pspb.CreatePayoutBatchRequest(
                                        chain_id=31337,
                                        asset="ETH",
                                        items=[pspb.PayoutItem(amount=str(a), destination=d) for d, a in items],
                                    ),
                                    metadata=merchant.auth,
                                )
                                return [p.payout_id for p in reply.payouts]
                            replies = await asyncio.gather(
                                *(
                                    api.CreatePayout(
                                        pspb.CreatePayoutRequest(
                                            chain_id=31337, asset="ETH", amount=str(a), destination=d
                                        ),
                                        metadata=merchant.auth,
                                    )
                                    for d, a in items
                                )
                            )
                            return [r.payout.payout_id for r in replies]

                        ids = [i for found in await asyncio.gather(*(create(e) for e in plan)) for i in found]
                        await events.wait_confirmed(ids, within=max(120.0, len(ids) * 4 * block_time * 3))
                        elapsed = max(events.confirmed[i] for i in ids) - started
                        latency = summary_ms([events.confirmed[i] - events.created.get(i, started) for i in ids])
                        for _, items in plan:
                            for destination, amount in items:
                                wrong += await chain.balance(destination) != amount
                        rows.append((name, len(ids), len(plan), len(ids) / elapsed, latency))
                        print(
                            f"{name}: {len(ids)} payouts from {len(plan)} wallet(s) in {elapsed:.1f} s -> "
                            f"{len(ids) / elapsed:.2f} payouts/s; created->confirmed p50 {latency['p50']:.0f} ms "
                            f"p99 {latency['p99']:.0f} ms",
                            flush=True,
                        )

                    def destinations(count: int) -> list[tuple[str, int]]:
                        return [(Account.create().address, AMOUNT + i) for i in range(count)]

                    funds = ETHER
                    one = await new_merchant(channel, chain, funds)
                    await measure("single (one CreatePayout each)", [(one, destinations(single))], batched=False)
                    two = await new_merchant(channel, chain, funds)
                    await measure("batch (one CreatePayoutBatch)", [(two, destinations(batch))], batched=True)
                    many = [await new_merchant(channel, chain, funds) for _ in range(wallets)]
                    await measure(
                        f"{wallets} wallets at once", [(m, destinations(per_wallet)) for m in many], batched=True
                    )
            finally:
                await nc.drain()
        finally:
            for proc in procs:
                if proc.proc is not None and proc.proc.poll() is None:
                    proc.terminate()
            await chain.aclose()
            anvil.stop()
            nats_server.stop()
            pg.stop()
    table = "\n".join(
        f"| {name} | {count} | {w} | **{rate:.2f}** | {lat['p50']:.0f} | {lat['p90']:.0f} | {lat['p99']:.0f} "
        f"| {lat['max']:.0f} |"
        for name, count, w, rate, lat in rows
    )
    return f"""## Payouts

Refunds and payouts sent by the sweeper (its own process, default settings) from
merchants' payout wallets: the ledger (its own process, Postgres 16 with fsync on)
records each payout; the sweeper claims it, signs, records the transaction in the
ledger before broadcasting it, waits for the receipt and {CONFIRMATIONS} confirmations, then
completes it. anvil mines a block every {block_time:g} s (interval mining). Every payout
sends ETH to a fresh address; times run from the ledger's `payout_created` to its
`payout_confirmed` event (both read on NATS). All on the same 2 cores.

| phase | payouts | wallets | payouts/s | p50 ms | p90 ms | p99 ms | max ms |
|---|---:|---:|---:|---:|---:|---:|---:|
{table}

How to read it: a payout wallet signs one payout at a time; the next is signed
once the previous is mined (the node's pending and latest nonces agree again, so
nonces never collide and a payout that fails never strands the ones after it),
while the previous waits for its confirmations. So one wallet does about one
payout per block plus polling, whether the payouts came one by one or in a batch;
wallets (merchants) send in parallel, up to the per-chain concurrency
(PAYMESH_SWEEPER_CONCURRENCY). Afterwards {wrong} destinations held anything but
exactly their amount.

Versions: {versions([devstack.anvil_binary(), "--version"])}.
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--block-time", type=float, default=0.5)
    parser.add_argument("--single", type=int, default=20)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--wallets", type=int, default=5)
    parser.add_argument("--per-wallet", type=int, default=10)
    args = parser.parse_args()
    import uvloop

    report = uvloop.run(main(args.block_time, args.single, args.batch, args.wallets, args.per_wallet))
    print(write_section("payouts", report))
