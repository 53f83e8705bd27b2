"""Internal transfers on a real anvil: native coin moved into deposit addresses by
contract calls (tools/contracts/TestForwarder.sol) is detected and confirmed with
either trace method, once per call, with the same event ids; value whose call or
caller reverted is never credited; a node that refuses the configured trace method
stops the chain's scan with an error that says what to change, never a silent skip."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.listener.v1 import listener_service_pb2 as lpb

from services.common.lifecycle import chain_health_name
from services.listener.app import SERVICE
from services.listener.domain.traces import internal_log_index
from tests.support.chain import (
    CHAIN_ID,
    FaultyRpc,
    TransferTap,
    calldata,
    isolated_buckets,
    listener_stub,
    mesh,
    status,
    wait_cursor,
    wait_status,
    wait_watching_all,
)
from tests.support.ledger import ADMIN_TOKEN, bearer, eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

CONFIRMED = pb.PAYMENT_STATUS_CONFIRMED
PENDING = pb.PAYMENT_STATUS_PENDING


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def net(postgres, tmp_path_factory):
    async with mesh(postgres, tmp_path_factory.mktemp("listener-internal"), database="listener_internal") as m:
        m.forwarder = await m.chain.deploy_forwarder()
        yield m


@pytest.mark.parametrize("method", ["debug_trace", "trace_block"])
async def test_internal_transfers_credited_and_reverted_ones_never(net, method):
    chains = net.write_chains(f"internal-{method}.yaml", net.anvil.http_url, internal_transfers=method)
    fwd = net.forwarder
    tap = await TransferTap().start(net.nc)
    try:
        async with net.listener(chains_file=chains, **isolated_buckets("internal")) as app:
            split_a, split_b, undone, bombed, top_reverted = [
                await net.merchant.create(amount=str(amount)) for amount in (5000, 7000, 9000, 11000, 13000)
            ]
            await wait_watching_all(app.port, net.database_url)

            # One transaction pays two deposit addresses; the send to the forwarder
            # itself in between fails (it has no receive function) and is skipped.
            split = await net.chain.call(
                fwd,
                "split(address[],uint256[])",
                [split_a.deposit_address, fwd, split_b.deposit_address],
                [5000, 1, 7000],
                value=12_001,
            )
            # A call that pays `undone`, inside a call that then reverts: the
            # transaction succeeds, the payment never happened.
            inner = calldata("sendThenRevert(address)", undone.deposit_address)
            nested = await net.chain.call(fwd, "tryCall(address,bytes)", fwd, inner, value=9000)
            # Value forced in by a self-destruct (no call to the address at all).
            bomb = await net.chain.call(fwd, "destroyTo(address)", bombed.deposit_address, value=11_000)
            # A transaction that fails as a whole.
            failed = await net.chain.call(fwd, "sendThenRevert(address)", top_reverted.deposit_address, value=13_000)
            assert [int(r["status"], 16) for r in (split, nested, bomb, failed)] == [1, 1, 1, 0]
            assert await _balance(net, undone.deposit_address) == 0
            assert await _balance(net, top_reverted.deposit_address) == 0

            # `undone` is then paid for real, by its own transaction: the only transfer it gets.
            own = await net.chain.send_eth(undone.deposit_address, 9000)
            head = await net.chain.mine(1)
            await wait_cursor(app.port, head)

            for payment, amount, receipt in ((split_a, 5000, split), (split_b, 7000, split), (bombed, 11_000, bomb)):
                done = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
                (transfer,) = done.transfers
                assert transfer.tx_hash == receipt["transactionHash"] and transfer.amount == str(amount)
                assert transfer.log_index <= -2 and transfer.credited
                assert await _balance(net, payment.deposit_address) == amount
            a = (await net.merchant.get(split_a.payment_id)).transfers[0]
            b = (await net.merchant.get(split_b.payment_id)).transfers[0]
            # The transaction's successful internal transfers, in order (the failed send took no effect).
            assert (a.log_index, b.log_index) == (internal_log_index(0), internal_log_index(1))
            assert a.from_address.lower() == fwd.lower()

            done = await wait_status(net.merchant, undone.payment_id, CONFIRMED)
            assert [(t.tx_hash, t.log_index) for t in done.transfers] == [(own, -1)]
            reverted = await net.merchant.get(top_reverted.payment_id)
            assert reverted.status == PENDING and not reverted.transfers
            assert tap.to(undone.deposit_address)[0].tx_hash == own and len(tap.to(undone.deposit_address)) == 1
            assert tap.to(top_reverted.deposit_address) == []
            s = await status(app.port)
            assert s.last_error == "" and s.internal_transfers == method
    finally:
        await tap.stop()


async def test_both_trace_methods_give_the_same_event_ids(net):
    """Switching methods (or two listeners on different nodes) cannot double a transfer."""
    payment = await net.merchant.create(amount="4000")
    ids = []
    block = None
    for method in ("debug_trace", "trace_block"):
        chains = net.write_chains(f"same-{method}.yaml", net.anvil.http_url, internal_transfers=method)
        tap = await TransferTap().start(net.nc)
        try:
            async with net.listener(chains_file=chains, **isolated_buckets("internal")) as app:
                await wait_watching_all(app.port, net.database_url)
                if block is None:
                    await net.chain.call(
                        net.forwarder, "split(address[],uint256[])", [payment.deposit_address], [4000], value=4000
                    )
                    await net.chain.mine(1)
                else:
                    # This listener starts at the head: scan the payment's block again.
                    await _rescan(app.port, block)
                block = await _first_block_seen(tap, payment.deposit_address)
                # (A fresh listener may also backfill the block: the same event, published twice, dropped by id.)
                ids.append({(t.tx_hash, t.log_index, t.block_hash) for t in tap.to(payment.deposit_address)})
        finally:
            await tap.stop()
    assert ids[0] == ids[1] and len(ids[0]) == 1
    done = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    assert len(done.transfers) == 1


async def test_a_node_that_leaves_out_tx_hashes_in_call_traces(net):
    """Some nodes' callTracer results carry no `txHash`: the listener looks it up."""

    def strip_tx_hashes(request, reply):
        for req, rep in zip(_as_list(request), _as_list(reply), strict=True):
            if req.get("method") == "debug_traceBlockByHash" and isinstance(rep.get("result"), list):
                for entry in rep["result"]:
                    entry.pop("txHash", None)
        return reply

    proxy = FaultyRpc(net.anvil.http_url, enabled=False, rewrite=strip_tx_hashes).start()
    try:
        chains = net.write_chains("no-tx-hash.yaml", proxy.url, internal_transfers="debug_trace")
        async with net.listener(chains_file=chains, **isolated_buckets("internal")) as app:
            payment = await net.merchant.create(amount="2500")
            await wait_watching_all(app.port, net.database_url)
            receipt = await net.chain.call(
                net.forwarder, "split(address[],uint256[])", [payment.deposit_address], [2500], value=2500
            )
            await net.chain.mine(1)
            done = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
            assert [t.tx_hash for t in done.transfers] == [receipt["transactionHash"]]
    finally:
        proxy.stop()


def _as_list(value):
    return value if isinstance(value, list) else [value]


async def test_a_node_without_the_trace_method_gets_a_clear_error_not_a_silent_skip(net):
    proxy = FaultyRpc(net.anvil.http_url, enabled=False, refuse_methods=frozenset({"trace_block"})).start()
    buckets = isolated_buckets("internal")
    try:
        chains = net.write_chains("no-trace.yaml", proxy.url, internal_transfers="trace_block")
        async with net.listener(chains_file=chains, **buckets) as app:
            payment = await net.merchant.create(amount="3000")
            await wait_watching_all(app.port, net.database_url)
            receipt = await net.chain.call(
                net.forwarder, "split(address[],uint256[])", [payment.deposit_address], [3000], value=3000
            )

            async def refused():
                s = await status(app.port)
                return s if "internal_transfers" in s.last_error else None

            s = await eventually(refused, timeout=20)
            assert "trace_block" in s.last_error and "refuses" in s.last_error
            assert s.cursor < int(receipt["blockNumber"], 16)  # the block with the transfer is not passed over
            assert (await net.merchant.get(payment.payment_id)).status == PENDING
            await eventually(lambda: _chain_serving(app.port, False), timeout=20)
        # The operator switches to the method the node has: the listener resumes
        # from its saved cursor and finds the transfer.
        chains = net.write_chains("with-trace.yaml", net.anvil.http_url, internal_transfers="debug_trace")
        async with net.listener(chains_file=chains, **buckets):
            await net.chain.mine(1)
            await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    finally:
        proxy.stop()


# ---------------------------------------------------------------- helpers


async def _chain_serving(port: int, serving: bool) -> bool:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=chain_health_name(SERVICE, CHAIN_ID)), timeout=5
        )
    return (reply.status == health_pb2.HealthCheckResponse.SERVING) == serving


async def _balance(net, address: str) -> int:
    return int(await net.chain.rpc("eth_getBalance", address, "latest"), 16)


async def _first_block_seen(tap: TransferTap, address: str) -> int:
    async def seen():
        found = tap.to(address)
        return found[0].block_number if found else None

    return await eventually(seen, timeout=15)


async def _rescan(port: int, block: int) -> None:
    channel, stub = listener_stub(port)
    async with channel:
        await stub.Rescan(
            lpb.RescanRequest(chain_id=CHAIN_ID, from_block=block, to_block=block),
            metadata=bearer(ADMIN_TOKEN),
            timeout=30,
        )
