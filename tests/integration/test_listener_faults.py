"""The listener when things go wrong: the WebSocket drops (polling carries on),
the RPC returns errors and garbage (logged, retried, never a crash), the chain
reorganises (orphaned transfers rolled back, canonical ones credited), the RPC
is unreachable (health NOT_SERVING)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.listener.v1 import listener_service_pb2 as lpb
from prometheus_client import REGISTRY

from services.common.lifecycle import chain_health_name
from services.listener.app import SERVICE
from tests.support.chain import (
    CHAIN_ID,
    FaultyRpc,
    TcpProxy,
    isolated_buckets,
    listener_stub,
    mesh,
    status,
    wait_cursor,
    wait_status,
    wait_watching_all,
)
from tests.support.ledger import ADMIN_TOKEN, bearer, eventually
from tools import devstack

pytestmark = pytest.mark.asyncio(loop_scope="session")

DETECTED = pb.PAYMENT_STATUS_DETECTED
CONFIRMED = pb.PAYMENT_STATUS_CONFIRMED


def isolated() -> dict[str, str]:
    return isolated_buckets("faults")


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def net(postgres, tmp_path_factory):
    async with mesh(postgres, tmp_path_factory.mktemp("listener-faults"), database="listener_faults") as m:
        yield m


async def test_websocket_drop_falls_back_to_polling_and_reconnects(net):
    proxy = TcpProxy(net.anvil.port)
    await proxy.open()
    chains = net.write_chains("ws-proxy.yaml", net.anvil.http_url, f"ws://127.0.0.1:{proxy.port}")
    before = metric("paymesh_listener_reconnects_total", chain_id=str(CHAIN_ID), what="websocket")
    try:
        async with net.listener(
            chains_file=chains, ws_backoff_max_seconds=0.5, poll_interval_seconds=0.2, **isolated()
        ) as app:

            async def mode(expected):
                s = await status(app.port)
                return s if s.mode == expected else None

            await eventually(lambda: mode(lpb.CONNECTION_MODE_WEBSOCKET), timeout=10)
            first = await net.merchant.create(amount="1111")
            await wait_watching_all(app.port, net.database_url)
            await net.chain.send_eth(first.deposit_address, 1111)
            await wait_status(net.merchant, first.payment_id, DETECTED, CONFIRMED)

            await proxy.close()  # the socket dies and cannot reconnect
            await eventually(lambda: mode(lpb.CONNECTION_MODE_HTTP_POLLING), timeout=10)
            second = await net.merchant.create(amount="2222")
            await wait_watching_all(app.port, net.database_url)
            await net.chain.send_eth(second.deposit_address, 2222)
            await net.chain.mine(1)
            await wait_status(net.merchant, second.payment_id, CONFIRMED)
            await wait_status(net.merchant, first.payment_id, CONFIRMED)
            assert (await status(app.port)).mode == lpb.CONNECTION_MODE_HTTP_POLLING

            await proxy.open()  # back: the listener reconnects by itself
            await eventually(lambda: mode(lpb.CONNECTION_MODE_WEBSOCKET), timeout=10)
            third = await net.merchant.create(amount="3333")
            await wait_watching_all(app.port, net.database_url)
            await net.chain.send_eth(third.deposit_address, 3333)
            await net.chain.mine(1)
            await wait_status(net.merchant, third.payment_id, CONFIRMED)
    finally:
        await proxy.close()
    assert metric("paymesh_listener_reconnects_total", chain_id=str(CHAIN_ID), what="websocket") > before


async def test_rpc_errors_and_garbage_are_retried_never_fatal(net):
    proxy = FaultyRpc(net.anvil.http_url, every=3).start()
    chains = net.write_chains("faulty.yaml", proxy.url)
    errors_before = sum(
        metric("paymesh_listener_rpc_errors_total", chain_id=str(CHAIN_ID), method=m, kind=k)
        for m in ("eth_getBlockByNumber", "batch:eth_getBlockByNumber", "eth_getLogs", "eth_getTransactionReceipt")
        for k in ("unavailable", "rpc_error", "malformed")
    )
    try:
        async with net.listener(chains_file=chains, rpc_attempts=2, **isolated()) as app:
            payments = []
            for i in range(4):
                asset = "TUSD" if i % 2 else "ETH"
                p = await net.merchant.create(asset=asset, amount=str(5000 + i))
                await wait_watching_all(app.port, net.database_url)
                if asset == "ETH":
                    await net.chain.send_eth(p.deposit_address, 5000 + i)
                else:
                    await net.chain.send_token(p.deposit_address, 5000 + i)
                payments.append(p)
            await net.chain.mine(1)
            for p in payments:
                done = await wait_status(net.merchant, p.payment_id, CONFIRMED, timeout=40)
                assert done.amount_confirmed == done.amount_due and len(done.transfers) == 1
            s = await status(app.port)
            assert s.leader and s.mode == lpb.CONNECTION_MODE_HTTP_POLLING
            assert app.leaderships[CHAIN_ID].scanner.running, "the scan loop stopped after the faults"
            assert not any(t.done() for t in app._tasks), "a listener task died"
    finally:
        proxy.stop()
    assert len(proxy.injected) >= 5, proxy.injected  # many kinds of faults were really served
    errors_after = sum(
        metric("paymesh_listener_rpc_errors_total", chain_id=str(CHAIN_ID), method=m, kind=k)
        for m in ("eth_getBlockByNumber", "batch:eth_getBlockByNumber", "eth_getLogs", "eth_getTransactionReceipt")
        for k in ("unavailable", "rpc_error", "malformed")
    )
    assert errors_after > errors_before


async def test_reorg_rolls_back_orphaned_transfer_and_credits_canonical_one(net):
    reorgs_before = metric("paymesh_listener_reorgs_total", chain_id=str(CHAIN_ID))
    async with net.listener(**isolated()) as app:
        payment = await net.merchant.create(amount="7000")
        await wait_watching_all(app.port, net.database_url)
        base = await net.chain.block_number()
        await wait_cursor(app.port, base)
        snapshot = await net.chain.snapshot()
        raw1, tx1 = await net.chain.signed(6, to=payment.deposit_address, value=7000)
        nonce = int(
            await net.chain.rpc("eth_getTransactionCount", "0x976EA74026E726554dB657fA54763abd0C3a0aa9", "latest"), 16
        )
        await net.chain.send_raw(raw1)
        await net.chain.receipt(tx1)
        detected = await wait_status(net.merchant, payment.payment_id, DETECTED)
        orphaned_hash = detected.transfers[0].block_hash

        # The block is replaced by a branch where the same account paid with
        # another transaction (same nonce), and that branch grows longer.
        await net.chain.revert(snapshot)
        raw2, tx2 = await net.chain.signed(
            6, to=payment.deposit_address, value=7000, data="0x01", gas=30_000, nonce=nonce
        )
        await net.chain.send_raw(raw2)
        await net.chain.receipt(tx2)
        await net.chain.mine(2)

        async def settled():
            p = await net.merchant.get(payment.payment_id)
            states = {t.tx_hash: t.state for t in p.transfers}
            ok = states.get(tx1) == pb.TRANSFER_STATE_ORPHANED and states.get(tx2) == pb.TRANSFER_STATE_CONFIRMED
            return p if ok and p.status == CONFIRMED else None

        final = await eventually(settled, timeout=20)
        assert final.amount_confirmed == "7000"
        canonical = {
            (await net.chain.block(t.block_number))["hash"]
            for t in final.transfers
            if t.state != pb.TRANSFER_STATE_ORPHANED
        }
        assert orphaned_hash not in canonical
        assert metric("paymesh_listener_reorgs_total", chain_id=str(CHAIN_ID)) >= reorgs_before + 1


async def test_anvil_reorg_of_the_head_block(net):
    async with net.listener(**isolated()) as app:
        payment = await net.merchant.create(asset="TUSD", amount="9000")
        await wait_watching_all(app.port, net.database_url)
        tx1 = await net.chain.send_token(payment.deposit_address, 9000)
        detected = await wait_status(net.merchant, payment.payment_id, DETECTED)
        old_hash = detected.transfers[0].block_hash
        # Replace the last block by one where the payer sent another transaction
        # (same nonce, so the first one can never be mined again).
        nonce = int((await net.chain.rpc("eth_getTransactionByHash", tx1))["nonce"], 16)
        raw, tx = await net.chain.signed(
            0,
            to="0x5FbDB2315678afecb367f032d93F642f64180aa3",
            data=_calldata(payment.deposit_address, 9000),
            gas=100_001,
            nonce=nonce,
        )
        await net.chain.reorg(1, [(raw, 0)])
        await net.chain.mine(2)

        async def settled():
            p = await net.merchant.get(payment.payment_id)
            live = [t for t in p.transfers if t.state != pb.TRANSFER_STATE_ORPHANED]
            gone = [t for t in p.transfers if t.block_hash == old_hash]
            if (
                p.status in (CONFIRMED, pb.PAYMENT_STATUS_OVERPAID)
                and live
                and gone
                and all(t.state == pb.TRANSFER_STATE_ORPHANED for t in gone)
            ):
                return p
            return None

        final = await eventually(settled, timeout=20)
        live = [t for t in final.transfers if t.state != pb.TRANSFER_STATE_ORPHANED]
        for t in live:  # every transfer still counted is in a canonical block
            assert (await net.chain.block(t.block_number))["hash"] == t.block_hash
        assert final.amount_confirmed == str(sum(int(t.amount) for t in live))
        assert tx in {t.tx_hash for t in live}


def _calldata(to: str, amount: int) -> str:
    from tools.pay import transfer_calldata

    return transfer_calldata(to, amount)


async def test_unreachable_rpc_reports_not_serving(net):
    dead = devstack.free_port()
    chains = net.write_chains("dead.yaml", f"http://127.0.0.1:{dead}", f"ws://127.0.0.1:{dead}")
    async with net.listener(chains_file=chains, rpc_attempts=1, rpc_timeout_seconds=1, **isolated()) as app:
        channel, stub = listener_stub(app.port)
        async with channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def not_serving():
                reply = await health.Check(health_pb2.HealthCheckRequest(service=chain_health_name(SERVICE, CHAIN_ID)))
                return reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

            await eventually(not_serving, timeout=10)
            overall = await health.Check(health_pb2.HealthCheckRequest())
            assert overall.status == health_pb2.HealthCheckResponse.NOT_SERVING
            s = (await stub.GetStatus(lpb.GetStatusRequest(chain_id=CHAIN_ID), metadata=bearer(ADMIN_TOKEN))).chains[0]
            assert s.mode == lpb.CONNECTION_MODE_DISCONNECTED and s.last_error
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Rescan(
                    lpb.RescanRequest(chain_id=CHAIN_ID, from_block=1, to_block=1), metadata=bearer(ADMIN_TOKEN)
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "unreachable" in err.value.details()


async def test_catch_up_after_downtime_shrinks_log_ranges_for_the_provider(net):
    """Payments made while the listener was down are found when it comes back,
    through a provider that refuses eth_getLogs over more than 7 blocks."""
    proxy = FaultyRpc(net.anvil.http_url, enabled=False, logs_range_limit=7).start()
    chains = net.write_chains("limited.yaml", proxy.url)
    buckets = isolated()
    try:
        async with net.listener(chains_file=chains, **buckets) as app:
            await wait_cursor(app.port, await net.chain.block_number())
        payments = [await net.merchant.create(asset="TUSD" if i % 2 else "ETH", amount=str(600 + i)) for i in range(6)]
        for i, p in enumerate(payments):  # spread over ~60 blocks of downtime
            if p.asset == "ETH":
                await net.chain.send_eth(p.deposit_address, 600 + i)
            else:
                await net.chain.send_token(p.deposit_address, 600 + i)
            await net.chain.mine(9)
        head = await net.chain.block_number()
        async with net.listener(chains_file=chains, logs_range_initial=1000, max_backfill_blocks=10, **buckets) as app:
            for p in payments:
                done = await wait_status(net.merchant, p.payment_id, CONFIRMED, timeout=30)
                assert len(done.transfers) == 1 and done.amount_confirmed == done.amount_due
            s = await wait_cursor(app.port, head)
            assert s.leader
    finally:
        proxy.stop()
    assert proxy.range_errors >= 1
    assert metric("paymesh_listener_getlogs_range_blocks", chain_id=str(CHAIN_ID)) <= 7


async def test_lag_blocks_keeps_the_cursor_behind_the_head(net):
    async with net.listener(lag_blocks=3, **isolated()) as app:
        payment = await net.merchant.create(amount="4321")
        await wait_watching_all(app.port, net.database_url)
        await net.chain.send_eth(payment.deposit_address, 4321)
        paid_in = await net.chain.block_number()
        await wait_cursor(app.port, paid_in - 3)
        # Not a pause: a later scan step that found nothing more to do with the
        # head at paid_in (the step that moved the cursor cleared `idle` first).
        await asyncio.wait_for(app.leaderships[CHAIN_ID].scanner.idle.wait(), timeout=10)
        s = await status(app.port)
        assert s.cursor == paid_in - 3 and s.lag >= 3
        assert (await net.merchant.get(payment.payment_id)).status == pb.PAYMENT_STATUS_PENDING
        await net.chain.mine(4)  # the transfer's block is now 3 behind, plus one to confirm
        await wait_status(net.merchant, payment.payment_id, CONFIRMED)
        assert (await status(app.port)).cursor == paid_in + 1


async def test_address_feed_survives_a_ledger_restart(net):
    from services.ledger.app import LedgerApp

    reconnects_before = metric("paymesh_listener_reconnects_total", chain_id=str(CHAIN_ID), what="address_feed")
    async with net.listener(**isolated()) as app:
        await wait_watching_all(app.port, net.database_url)
        port = net.ledger.port
        await net.ledger.stop()
        await eventually(lambda: _feed_down(app), timeout=10)
        net.ledger = LedgerApp(net.ledger.settings.model_copy(update={"grpc_port": port}))
        await net.ledger.start()
        payment = await net.merchant.create(amount="8080")
        await wait_watching_all(app.port, net.database_url, timeout=20)  # re-streamed, then the new one
        await net.chain.send_eth(payment.deposit_address, 8080)
        await net.chain.mine(1)
        await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    assert (
        metric("paymesh_listener_reconnects_total", chain_id=str(CHAIN_ID), what="address_feed")
        >= reconnects_before + 1
    )


async def _feed_down(app) -> bool:
    return not app.leaderships[CHAIN_ID].subscription.connected
