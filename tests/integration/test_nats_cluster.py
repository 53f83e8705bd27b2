"""A 3-node NATS JetStream cluster on loopback (the same nats-server binary, cluster
routes between the nodes): the ledger and the notifier take every node's URL, the
streams are created with 3 replicas, and when the node they are connected to dies
they reconnect to another and every payment event still reaches the merchant's
webhook, exactly once per event. Every wait is bounded; nothing asserts a duration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio

from services.ledger.app import LedgerApp
from tests.integration.conftest import ledger_settings
from tests.support.ledger import create_merchant, eventually, fresh_xpub
from tests.support.webhooks import WebhookReceiver, ok, running_notifier
from tools import devstack

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def cluster(stack_dir: Path) -> Iterator[devstack.NatsCluster]:
    nodes = devstack.start_nats_cluster(stack_dir / f"nats-cluster-{devstack.free_port()}", size=3)
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def clustered_ledger(postgres, cluster, chains_file) -> AsyncIterator[LedgerApp]:
    app = LedgerApp(ledger_settings(postgres.create_database("ledger_nats_cluster"), cluster.url, chains_file))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_streams_are_replicated_and_events_survive_the_loss_of_a_node(postgres, cluster, clustered_ledger):
    import grpc

    nc = await nats.connect(servers=cluster.url.split(","))
    try:
        js = nc.jetstream()
        for stream in ("CHAIN", "PAYMENTS", "DLQ"):
            info = await js.stream_info(stream)
            assert info.config.num_replicas == 3, (stream, info.config.num_replicas)
    finally:
        await nc.close()

    async with (
        running_notifier(postgres, cluster.url, clustered_ledger.port) as notifier,
        WebhookReceiver(ok()) as receiver,
        grpc.aio.insecure_channel(f"127.0.0.1:{clustered_ledger.port}") as channel,
    ):
        xpub, account = fresh_xpub()
        merchant = await create_merchant(
            channel, xpub, derivation_path=f"m/44'/60'/{account}'", webhook_url=receiver.url
        )
        before = [await merchant.create(amount=str(100 + i)) for i in range(3)]
        await receiver.wait_for(lambda: len(receiver.event_ids(answered_ok=True)) == 3)

        # Kill the node the ledger publishes through (the notifier may be on it too).
        used = clustered_ledger.nc.connected_url
        victim = next(n for n in cluster.nodes if used is not None and n.port == used.port)
        victim.kill()
        after = [await merchant.create(amount=str(200 + i)) for i in range(3)]

        async def all_delivered():
            return len(receiver.event_ids(answered_ok=True)) == 6

        await eventually(all_delivered, timeout=60)
        assert clustered_ledger.nc.is_connected and clustered_ledger.nc.connected_url.port != victim.port
        assert notifier.nc.is_connected
        created = [r.json()["data"]["payment"]["payment_id"] for r in receiver.succeeded()]
        assert sorted(created) == sorted(p.payment_id for p in before + after)  # each exactly once
        victim.start()  # the node comes back and rejoins
