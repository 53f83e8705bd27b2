"""How the ledger's cost grows with its history (issue 19): CreatePayment rate and
p99, chain events applied, ListPayments with filters, and the watched-address
snapshot a listener loads at start, with 10^4, 10^5, 10^6 (and 10^7 with
--sizes) payments already in Postgres.

The history is bulk-loaded by the benchmark: INSERT ... SELECT over
generate_series, cloning a payment (its option, deposit address and transfer)
made through the API, so every column is as the ledger writes it. History
payments are SWEPT, spread over the past year, and no longer watched (their
watch_until passed). Beside them a fixed live set of LIVE payments made through
the API is awaiting payment; what the benchmarks create is aged out of the live
set after each phase (watch_until set in the past), so the live set stays the
same size and only history grows. Postgres with fsync on; VACUUM ANALYZE after
each load (as autovacuum would have done for history that grew over a year). Bounded: each phase runs
for a fixed time or count.

    python -m bench.bench_growth [--sizes 10000 100000 1000000] [--seconds 5] [--events 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.ledger.v1 import address_feed_service_pb2 as fpb
from paymesh.ledger.v1 import address_feed_service_pb2_grpc as fgrpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb

from bench.bench_ledger import apply_rate, create_load
from bench.common import summary_ms, write_section
from tests.support.ledger import (
    ADDRESS_FEED_TOKEN,
    ADMIN_TOKEN,
    SERVICE_TOKEN_ENV,
    bearer,
    create_merchant,
    fresh_xpub,
    write_chains_file,
)
from tools import devstack
from tools.services import ServiceProcess

LIVE = 10_000  # payments awaiting payment, whatever the history
PLOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "growth.png"

# Columns of a history row that differ from the template's; `g` is the row's
# number, `ts` its creation time (a second in the year before the last 8 days).
PAYMENT_COLUMNS = {
    "id": "'pay_h' || lpad(g::text, 12, '0')",
    "deposit_address": "'0x' || lpad(to_hex(g), 40, '0')",
    "derivation_index": "1000000000 + g",
    "idempotency_key": "NULL",
    "checkout_token": "'h' || g",
    "merchant_order_id": "'order-' || g",
    "status": "'swept'",
    "amount_received": "t.amount_due",
    "amount_confirmed": "t.amount_due",
    "amount_swept": "t.amount_due",
    "created_at": "ts",
    "updated_at": "ts + interval '2 minutes'",
    "expires_at": "ts + interval '1 hour'",
    "expired_at": "ts + interval '1 hour'",  # the expiry job marks every payment once past it
    "watch_until": "ts + interval '7 days'",
}
OPTION_COLUMNS = {
    "payment_id": "'pay_h' || lpad(g::text, 12, '0')",
    "status": "'paid'",
    "amount_received": "t.amount_due",
    "amount_confirmed": "t.amount_due",
    "amount_swept": "t.amount_due",
    "sweep_due_at": "NULL",
    "sweep_claimed_by": "NULL",
    "sweep_lease_until": "NULL",
}
ADDRESS_COLUMNS = {
    "id": "nextval('deposit_addresses_id_seq')",
    "payment_id": "'pay_h' || lpad(g::text, 12, '0')",
    "address": "'0x' || lpad(to_hex(g), 40, '0')",
    "derivation_index": "1000000000 + g",
    "created_at": "ts",
}
TRANSFER_COLUMNS = {
    "id": "nextval('transfers_id_seq')",
    "payment_id": "'pay_h' || lpad(g::text, 12, '0')",
    "to_address": "'0x' || lpad(to_hex(g), 40, '0')",
    "tx_hash": "'0x' || lpad(to_hex(g), 64, '0')",
    "block_hash": "'0x' || lpad(to_hex(g), 64, 'f')",
    "block_number": "g",
    "block_timestamp": "ts + interval '1 minute'",
    "state": "'confirmed'",
    "credited": "true",
    "created_at": "ts + interval '1 minute'",
}


async def clone_sql(conn: asyncpg.Connection, table: str, overrides: dict[str, str], template: str) -> str:
    """INSERT INTO table SELECT ... with every column copied from the template row
    (`template`: a WHERE clause on `t`) except those in `overrides`."""
    columns = [
        r["column_name"]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            table,
        )
    ]
    values = [overrides.get(c, f't."{c}"') for c in columns]
    names = ", ".join(f'"{c}"' for c in columns)
    return (
        f"INSERT INTO {table} ({names}) "
        f"SELECT {', '.join(values)} FROM {table} t, "
        "LATERAL (SELECT g, now() - interval '8 days' - (g % 31000000) * interval '1 second' AS ts "
        "FROM generate_series($1::bigint, $2::bigint) g) x "
        f"WHERE {template}"
    )


async def load_history(db_url: str, template: tuple[str, int], first: int, last: int) -> float:
    """History rows numbered first..last (payments, options, addresses, transfers)
    cloned from `template` (a payment id and the id of its transfer), in chunks of
    250,000 rows per transaction; returns the seconds it took."""
    started = time.perf_counter()
    payment_id, transfer_id = template
    conn = await asyncpg.connect(db_url)
    try:
        statements = [
            await clone_sql(conn, "payments", PAYMENT_COLUMNS, f"t.id = '{payment_id}'"),
            await clone_sql(conn, "payment_options", OPTION_COLUMNS, f"t.payment_id = '{payment_id}'"),
            await clone_sql(conn, "deposit_addresses", ADDRESS_COLUMNS, f"t.payment_id = '{payment_id}'"),
            await clone_sql(conn, "transfers", TRANSFER_COLUMNS, f"t.id = {transfer_id}"),
        ]
        for low in range(first, last + 1, 250_000):
            high = min(last, low + 249_999)
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement, low, high)
        # As autovacuum would have long done for history that grew over a year: the
        # visibility map and hint bits set, statistics fresh (not the bulk load's debt).
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def age_out_created(db_url: str) -> None:
    """Payments the benchmarks made (no merchant_order_id) leave the live set."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "UPDATE payments SET watch_until = now() - interval '1 day' "
            "WHERE merchant_order_id = '' AND watch_until > now()"
        )
    finally:
        await conn.close()


async def list_latency(port: int, merchant, requests: dict[str, spb.ListPaymentsRequest], calls: int) -> dict:
    out = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = type(merchant.payments)(channel)
        for name, request in requests.items():
            latencies = []
            for _ in range(calls):
                started = time.perf_counter()
                await stub.ListPayments(request, metadata=merchant.auth, timeout=60)
                latencies.append(time.perf_counter() - started)
            out[name] = summary_ms(latencies)
    return out


async def snapshot_seconds(port: int, repeats: int = 3) -> tuple[float, int]:
    """The median time until WatchAddresses says snapshot_complete, and its size."""
    times, count = [], 0
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    ) as channel:
        stub = fgrpc.AddressFeedServiceStub(channel)
        for _ in range(repeats):
            started, count = time.perf_counter(), 0
            stream = stub.WatchAddresses(
                fpb.WatchAddressesRequest(chain_id=31337), metadata=bearer(ADDRESS_FEED_TOKEN), timeout=600
            )
            async for reply in stream:
                count += len(reply.addresses)
                if reply.snapshot_complete:
                    break
            stream.cancel()
            times.append(time.perf_counter() - started)
    return statistics.median(times), count


def timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


async def make_live_set(port: int, merchant) -> None:
    """LIVE payments awaiting payment (merchant_order_id live-n)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = type(merchant.payments)(channel)
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await stub.CreatePayment(
                    spb.CreatePaymentRequest(
                        chain_id=31337, asset="ETH", amount=str(10**15 + i), merchant_order_id=f"live-{i}"
                    ),
                    metadata=merchant.auth,
                )

        await asyncio.gather(*(one(i) for i in range(LIVE)))


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    panels = [
        (axes[0][0], "CreatePayment/s (16 clients)", [r["create_rate"] for r in rows]),
        (axes[0][1], "chain events applied/s", [r["apply_rate"] for r in rows]),
    ]
    for ax, title, values in panels:
        ax.plot(sizes, values, marker="o")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
    ax = axes[0][0].twinx()
    ax.plot(sizes, [r["create_p99"] for r in rows], marker="x", color="tab:red")
    ax.set_ylabel("p99 ms", color="tab:red")
    ax.set_ylim(bottom=0)
    for name in rows[0]["list"]:
        axes[1][0].plot(sizes, [r["list"][name]["p99"] for r in rows], marker="o", label=name)
    axes[1][0].set_title("ListPayments p99 ms (page of 50)")
    axes[1][0].legend(fontsize=7)
    axes[1][0].set_yscale("log")
    axes[1][1].plot(sizes, [r["snapshot_s"] for r in rows], marker="o")
    axes[1][1].set_title(f"watched-address snapshot, s ({LIVE:,} live)")
    axes[1][1].set_ylim(bottom=0)
    for row in axes:
        for ax in row:
            ax.set_xscale("log")
            ax.set_xlabel("history payments in Postgres")
            ax.grid(True, alpha=0.3)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=90)


async def main(sizes: list[int], seconds: float, events: int, list_calls: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="paymesh-growth-"))
    rows: list[dict] = []
    with devstack.postgres_scratch_dir(work / "pg") as pg_dir:
        pg = devstack.start_postgres(pg_dir, fast=False)  # fsync on: honest commits
        nats_server = devstack.start_nats(work / "nats")
        try:
            db_url = pg.create_database("growth")
            env = {
                "PAYMESH_DATABASE_URL": db_url,
                "PAYMESH_NATS_URL": nats_server.url,
                "PAYMESH_CHAINS_FILE": str(write_chains_file(work / "chains.yaml")),
                "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
                **SERVICE_TOKEN_ENV,
                "PAYMESH_LOG_LEVEL": "WARNING",
            }
            ledger = ServiceProcess("services.ledger", env, work / "ledger.log", devstack.free_port()).start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{ledger.port}") as channel:
                    xpub, _ = fresh_xpub()
                    merchant = await create_merchant(channel, xpub)
                await make_live_set(ledger.port, merchant)
                # A payment paid through the ledger is the template of every history row.
                async_url = db_url.replace("postgresql://", "postgresql+asyncpg://")
                await apply_rate(ledger.port, nats_server.url, async_url, merchant, 10)
                conn = await asyncpg.connect(db_url)
                try:
                    first = await conn.fetchrow("SELECT payment_id, id FROM transfers ORDER BY id LIMIT 1")
                    template = (first["payment_id"], first["id"])
                finally:
                    await conn.close()
                await age_out_created(db_url)
                loaded = 0
                now = datetime.now(UTC)
                requests = {
                    "newest": spb.ListPaymentsRequest(page_size=50),
                    "status=SWEPT": spb.ListPaymentsRequest(page_size=50, statuses=[pb.PAYMENT_STATUS_SWEPT]),
                    "status=PENDING": spb.ListPaymentsRequest(page_size=50, statuses=[pb.PAYMENT_STATUS_PENDING]),
                    # A status no payment has, an order id no payment has: the worst cases.
                    "status=UNDERPAID (none)": spb.ListPaymentsRequest(
                        page_size=50, statuses=[pb.PAYMENT_STATUS_UNDERPAID]
                    ),
                    "created 30-20 days ago": spb.ListPaymentsRequest(
                        page_size=50,
                        created_after=timestamp(now - timedelta(days=30)),
                        created_before=timestamp(now - timedelta(days=20)),
                    ),
                    "merchant_order_id": spb.ListPaymentsRequest(page_size=50, merchant_order_id="order-7"),
                    "merchant_order_id (none)": spb.ListPaymentsRequest(page_size=50, merchant_order_id="order-x"),
                }
                for size in sizes:
                    load_s = await load_history(db_url, template, loaded + 1, size) if size > loaded else 0.0
                    loaded = max(loaded, size)
                    print(f"{size:,} history payments loaded in {load_s:.1f} s", flush=True)
                    rate, lat = await create_load(ledger.port, merchant, seconds, 16)
                    create = summary_ms(lat)
                    await age_out_created(db_url)
                    applied, _ = await apply_rate(ledger.port, nats_server.url, async_url, merchant, events)
                    await age_out_created(db_url)
                    listed = await list_latency(ledger.port, merchant, requests, list_calls)
                    snapshot_s, snapshot_n = await snapshot_seconds(ledger.port)
                    row = {
                        "size": size,
                        "load_s": load_s,
                        "create_rate": rate,
                        "create_p99": create["p99"],
                        "apply_rate": applied,
                        "list": listed,
                        "snapshot_s": snapshot_s,
                        "snapshot_n": snapshot_n,
                    }
                    rows.append(row)
                    print(row, flush=True)
            finally:
                ledger.terminate()
        finally:
            nats_server.stop()
            pg.stop()
    plot(rows)
    names = list(rows[0]["list"])
    table = "\n".join(
        f"| {r['size']:,} | {r['create_rate']:,} | {r['create_p99']:.1f} | {r['apply_rate']:,.0f} | "
        + " | ".join(f"{r['list'][n]['p50']:.1f} / {r['list'][n]['p99']:.1f}" for n in names)
        + f" | {r['snapshot_s']:.2f} ({r['snapshot_n']:,}) | {r['load_s']:.0f} |"
        for r in rows
    )
    return f"""## Growth: the ledger with a year of history (issue 19)

`python -m bench.bench_growth --sizes {" ".join(str(s) for s in sizes)} --seconds {seconds:g} --events {events}`:
the ledger as its own process, Postgres 16 with fsync on, {LIVE:,} live payments awaiting
payment, and history bulk-loaded up to each size (the first column; the benchmarks' own
payments come on top): SWEPT payments over the past year, each with its option,
deposit address and confirmed transfer, expired and no longer watched, cloned in SQL
from a payment made through the API; VACUUM ANALYZE after each load.
CreatePayment: 16 clients for {seconds:g} s. Chain events: {events:,} transfers from
NATS, 10 to each of {events // 10:,} payments made for the phase, until all are recorded.
ListPayments: {list_calls} calls of each filter, a page of 50, p50 / p99 ms.
Snapshot: AddressFeedService.WatchAddresses until `snapshot_complete` (what a listener
loads at start; median of 3), with the addresses it returned.

| history payments | CreatePayment/s | p99 ms | chain events/s | {" | ".join(names)} | snapshot s (addresses) | load s |
|---:|---:|---:|---:|{"---:|" * len(names)}---:|---:|
{table}

![growth](img/growth.png)
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--list-calls", type=int, default=50)
    args = parser.parse_args()
    import uvloop

    report = uvloop.run(main(args.sizes, args.seconds, args.events, args.list_calls))
    print(write_section("growth", report))
