"""Scenario 2b: chaos with replicas (issue 18 §3). Two ledgers, two listeners (one
leader per chain), two sweepers (one signer per chain) and two notifiers, a 3-node
NATS JetStream cluster, and two RPC providers in front of anvil (the project's
faulty-RPC proxy). While the stream of payments of tests/support/chaos.py runs
(refunds and payouts too, and every check of money and events afterwards), three
chaos schedules run at once, each hitting one thing of its kind at a time, chosen
at random:

- a service replica is SIGKILLed and restarted, or frozen (SIGSTOP/SIGCONT) for 3 s;
- a NATS node is SIGKILLed and started again on its own data;
- an RPC provider goes down (connections dropped), answers 429 with Retry-After,
  freezes, or lags 20 blocks behind, for a few seconds.

Besides nothing lost, doubled or mis-stated, the work must really spread: each
ledger replica applied chain events and each notifier delivered webhooks (counted
from each process's /metrics, over its restarts). The split and the chaos taken are
printed, for docs/BENCHMARKS.md.

CI runs a short version; `make chaos` sets PAYMESH_CHAOS_PAYMENTS=1000 and
PAYMESH_CHAOS_KILL_EVERY=3 for the long one."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.conftest import ROOT, local_mesh
from tests.support.chain import Chain, FaultyRpc
from tests.support.chaos import MetricsTally, hit, payments_under_chaos, sleep_or_stop
from tools import devstack
from tools.run_mesh import REPLICATED, service_of

PAYMENTS = int(os.environ.get("PAYMESH_CHAOS_PAYMENTS", "24"))
KILL_EVERY = float(os.environ.get("PAYMESH_CHAOS_KILL_EVERY", "4"))
PROVIDER_FAULTS = ("down", "rate_limited", "frozen", "lagging")

# Counters that show who did the work, per process (summed over their labels).
APPLIED = "paymesh_ledger_chain_events_applied_total"
DELIVERED = "paymesh_webhook_deliveries_finished_total"
PUBLISHED = "paymesh_listener_transfers_published_total"
SWEPT = "paymesh_sweeper_payments_swept_total"
FAILOVERS = "paymesh_rpc_failovers_total"
COUNTERS = (APPLIED, DELIVERED, PUBLISHED, SWEPT, FAILOVERS)


def two_providers_chains(path: Path, urls: list[str]) -> Path:
    """The repository's chains.yaml with anvil behind the providers `urls`."""
    text = (ROOT / "chains.yaml").read_text()
    single = "rpc_url: ${PAYMESH_ANVIL_RPC_URL:-http://127.0.0.1:8545}\n"
    assert single in text
    path.write_text(text.replace(single, "rpc:\n" + "".join(f"      - {{url: {u}}}\n" for u in urls)))
    return path


@pytest.fixture(scope="module")
def providers():
    anvil_port = devstack.free_port()
    proxies = [
        FaultyRpc(f"http://127.0.0.1:{anvil_port}", enabled=False, retry_after=2, hang_seconds=4).start()
        for _ in range(2)
    ]
    try:
        yield anvil_port, proxies
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture(scope="module")
def mesh(stack_dir: Path, providers, tmp_path_factory):
    anvil_port, proxies = providers
    chains = two_providers_chains(tmp_path_factory.mktemp("chains") / "chains.yaml", [p.url for p in proxies])
    with local_mesh(
        stack_dir,
        replicas=2,
        nats_nodes=3,
        metrics=True,
        anvil_port=anvil_port,
        PAYMESH_CHAINS_FILE=str(chains),
    ) as local:
        yield local


@pytest_asyncio.fixture(loop_scope="session")
async def chain(mesh):
    node = Chain(mesh.env["PAYMESH_ANVIL_RPC_URL"])
    try:
        yield node
    finally:
        await node.aclose()


def replicas_and_nodes_and_providers(mesh, proxies: list[FaultyRpc]):
    """Three chaos schedules at once: service replicas, NATS nodes, providers."""
    rng = random.Random(11)
    replicas = [name for name in mesh.procs if service_of(name) in REPLICATED]
    nodes = mesh.stack.nats_cluster.nodes

    async def services(stop: asyncio.Event, log: list[str]) -> None:
        turn = 0
        # Until the stream is over and every replica was hit at least once.
        killed: set[str] = set()
        while not (stop.is_set() and killed >= set(replicas)):
            await sleep_or_stop(stop, KILL_EVERY)
            name = rng.choice(sorted(set(replicas) - killed)) if stop.is_set() else rng.choice(replicas)
            freeze = turn % 5 == 4
            await hit(mesh, name, freeze=freeze, log=log, rng=rng)
            if not freeze:
                killed.add(name)
            turn += 1

    async def nats_nodes(stop: asyncio.Event, log: list[str]) -> None:
        killed = 0
        while not (stop.is_set() and killed >= 1):
            await sleep_or_stop(stop, KILL_EVERY * 3)
            node = rng.choice(nodes)
            await asyncio.to_thread(node.kill)
            log.append(f"kill nats-{nodes.index(node) + 1}")
            killed += 1
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            await asyncio.to_thread(node.start)  # its own data; it catches up from the others

    async def rpc_providers(stop: asyncio.Event, log: list[str]) -> None:
        faults = 0
        while not (stop.is_set() and faults >= 1):
            await sleep_or_stop(stop, KILL_EVERY * 2)
            proxy = rng.choice(proxies)
            fault = PROVIDER_FAULTS[faults % len(PROVIDER_FAULTS)]
            proxy.mode = fault
            log.append(f"{fault} provider-{proxies.index(proxy) + 1}")
            faults += 1
            await asyncio.sleep(rng.uniform(2.0, 5.0))
            proxy.mode = ""

    async def chaos(stop: asyncio.Event, log: list[str]) -> None:
        await asyncio.gather(services(stop, log), nats_nodes(stop, log), rpc_providers(stop, log))

    return chaos


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(max(900, PAYMENTS * 4))
async def test_chaos_with_replicas_a_nats_cluster_and_two_providers(mesh, chain, providers):
    _, proxies = providers
    assert len(mesh.stack.nats_cluster.nodes) == 3 and all(len(mesh.replicas(s)) == 2 for s in REPLICATED)
    async with MetricsTally(mesh.metrics_ports, COUNTERS) as tally:
        outcome = await payments_under_chaos(
            mesh, chain, replicas_and_nodes_and_providers(mesh, proxies), payments=PAYMENTS, kill_every=KILL_EVERY
        )
    kinds = Counter(f"{action} {service_of(target)}" for action, target in (e.split() for e in outcome.chaos))
    split = {
        counter: {name: tally.total(name, counter) for name in mesh.metrics_ports if tally.total(name, counter)}
        for counter in COUNTERS
    }
    print(f"\nchaos with replicas: {outcome}\nchaos taken: {dict(kinds)}\nwork split: {split}")
    # Every replica, every NATS node's turn and a provider fault happened ...
    assert {e.split()[1] for e in outcome.chaos if e.startswith("kill ")} >= {
        n for n in mesh.procs if service_of(n) in REPLICATED
    }, outcome.chaos
    assert any(e.startswith("kill nats-") for e in outcome.chaos), outcome.chaos
    assert any("provider-" in e for e in outcome.chaos), outcome.chaos
    # ... and the work spread: each ledger applied chain events, each notifier delivered.
    for service, counter in (("ledger", APPLIED), ("notifier", DELIVERED)):
        for name in mesh.replicas(service):
            assert tally.total(name, counter) > 0, (name, counter, split)
