"""How the listener's memory and start time grow with the watched addresses
(issue 19): RSS and the time to load the address snapshot at 10^4 ... 10^7
addresses, as bytes per address and seconds per million.

Each size is a fresh listener process fed by a stand-in for the ledger's
WatchAddresses (bench_listener.FakeFeed: synthetic addresses, 5,000 per message),
on real NATS and anvil; after loading, one of the addresses is paid and its
transfer event must arrive (it still matches at that size). Bounded: one load per
size, each waited for at most 600 s.

    python -m bench.bench_listener_growth [--sizes 10000 100000 1000000 10000000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import nats

from bench.bench_listener import CHAIN_ID, Node, memory_phase
from bench.common import write_section
from tests.support.ledger import ADMIN_TOKEN, SERVICE_TOKEN_ENV, write_chains_file
from tools import devstack, pay

PLOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "listener_growth.png"


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["addresses"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(sizes, [r["rss_mb"] for r in rows], marker="o", label="RSS after loading")
    left.plot(sizes, [r["peak_mb"] for r in rows], marker="x", label="peak")
    left.set_title("listener memory, MB")
    left.legend(fontsize=8)
    right.plot(sizes, [r["load_s"] for r in rows], marker="o")
    right.set_title("address snapshot load, s")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("watched addresses")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=90)


async def main(sizes: list[int]) -> str:
    work = Path(tempfile.mkdtemp(prefix="paymesh-bench-listener-growth-"))
    nats_server = devstack.start_nats(work / "nats")
    anvil = devstack.start_anvil(log_file=work / "anvil.log", silent=True)
    node = Node(anvil.http_url)
    nc = None
    rows = []
    try:
        pay.ensure_test_token(anvil.http_url)
        env = {
            "PAYMESH_NATS_URL": nats_server.url,
            "PAYMESH_CHAINS_FILE": str(
                write_chains_file(work / "chains.yaml", rpc_url=anvil.http_url, ws_url=anvil.ws_url)
            ),
            "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
            **SERVICE_TOKEN_ENV,
            "PAYMESH_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "PAYMESH_CHAIN_IDS": f"[{CHAIN_ID}]",
        }
        nc = await nats.connect(nats_server.url)
        for size in sizes:
            mem = await memory_phase(node, nc, env, work, size, timeout=600)
            mem["bytes_per_address"] = (mem["rss_mb"] - mem["baseline_mb"]) * 1024 * 1024 / size
            mem["s_per_million"] = mem["load_s"] / size * 1_000_000
            rows.append(mem)
            print(mem, flush=True)
    finally:
        if nc is not None:
            await nc.drain()
        await node.client.aclose()
        anvil.stop()
        nats_server.stop()
    plot(rows)
    table = "\n".join(
        f"| {r['addresses']:,} | {r['baseline_mb']:.0f} | {r['rss_mb']:.0f} | {r['peak_mb']:.0f} | "
        f"{r['bytes_per_address']:.0f} | {r['load_s']:.2f} | {r['s_per_million']:.1f} |"
        for r in rows
    )
    return f"""## Growth: the listener with more watched addresses (issue 19)

`python -m bench.bench_listener_growth --sizes {" ".join(str(s) for s in sizes)}`: a fresh
listener per size, fed its address snapshot by a stand-in for the ledger's `WatchAddresses`
(5,000 addresses per message); RSS before and after loading, and the time from the
stream's start until the listener reports every address watched. After each load one
address is paid and its transfer event arrives. Bytes per address: (RSS after − RSS
before) / addresses, so it includes what the gRPC stream left behind.

| addresses | RSS before MB | RSS after MB | peak MB | bytes per address | load s | s per million |
|---:|---:|---:|---:|---:|---:|---:|
{table}

![listener growth](img/listener_growth.png)
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 10_000_000])
    args = parser.parse_args()
    import uvloop

    report = uvloop.run(main(args.sizes))
    print(write_section("listener_growth", report))
