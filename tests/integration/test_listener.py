"""The listener on a real anvil, NATS and ledger: native and ERC-20 payments
detected and confirmed, several in one block, split payments, unwatched
addresses ignored, late addresses backfilled, status and Rescan."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.listener.v1 import listener_service_pb2 as lpb

from services.common.lifecycle import chain_health_name
from services.listener.app import SERVICE
from tests.support.chain import (
    CHAIN_ID,
    TransferTap,
    listener_stub,
    mesh,
    new_address,
    status,
    wait_cursor,
    wait_status,
    wait_watching,
)
from tests.support.ledger import ADMIN_TOKEN, bearer, eventually
from tools.pay import TOKEN_ADDRESS

pytestmark = pytest.mark.asyncio(loop_scope="session")

DETECTED = pb.PAYMENT_STATUS_DETECTED
CONFIRMED = pb.PAYMENT_STATUS_CONFIRMED


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def net(postgres, tmp_path_factory):
    async with mesh(postgres, tmp_path_factory.mktemp("listener"), database="listener_main") as m:
        async with m.listener() as app:
            m.app = app
            yield m


async def watched_payment(net, **fields):
    before = (await status(net.app.port)).watched_addresses
    payment = await net.merchant.create(**fields)
    await wait_watching(net.app.port, before + 1)
    return payment


async def test_native_payment_detected_then_confirmed(net):
    payment = await watched_payment(net, amount="1000000")
    tx = await net.chain.send_eth(payment.deposit_address, 1_000_000)
    detected = await wait_status(net.merchant, payment.payment_id, DETECTED, CONFIRMED)
    assert detected.transfers[0].tx_hash == tx
    await net.chain.mine(1)  # 2 confirmations
    confirmed = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    assert confirmed.amount_confirmed == "1000000"
    assert [t.log_index for t in confirmed.transfers] == [-1]


async def test_token_payment_detected_then_confirmed(net):
    payment = await watched_payment(net, asset="TUSD", amount="2500000")
    tx = await net.chain.send_token(payment.deposit_address, 2_500_000)
    detected = await wait_status(net.merchant, payment.payment_id, DETECTED, CONFIRMED)
    transfer = detected.transfers[0]
    assert transfer.tx_hash == tx and transfer.log_index >= 0
    assert transfer.credited and transfer.amount == "2500000"
    await net.chain.mine(1)
    confirmed = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    assert confirmed.amount_confirmed == "2500000"


async def test_several_payments_in_one_block(net):
    payments = [await watched_payment(net, amount=str(1000 + i)) for i in range(3)]
    tokens = [await watched_payment(net, asset="TUSD", amount=str(2000 + i)) for i in range(2)]
    await net.chain.automine(False)
    try:
        for i, p in enumerate(payments):
            await net.chain.send_eth(p.deposit_address, 1000 + i, key_index=2 + i, wait=False)
        for i, p in enumerate(tokens):
            await net.chain.send_token(p.deposit_address, 2000 + i, wait=False)
        block = await net.chain.mine(1)
    finally:
        await net.chain.automine(True)
    blocks = set()
    for p in payments + tokens:
        detected = await wait_status(net.merchant, p.payment_id, DETECTED, CONFIRMED)
        blocks.update(t.block_number for t in detected.transfers)
    assert blocks == {block}
    await net.chain.mine(1)
    for p in payments + tokens:
        confirmed = await wait_status(net.merchant, p.payment_id, CONFIRMED)
        assert confirmed.amount_confirmed == confirmed.amount_due and len(confirmed.transfers) == 1


async def test_payment_split_across_two_transfers(net):
    payment = await watched_payment(net, asset="TUSD", amount="5000")
    await net.chain.send_token(payment.deposit_address, 2000)
    partial = await wait_status(net.merchant, payment.payment_id, DETECTED)
    assert partial.amount_received == "2000"
    await net.chain.send_token(payment.deposit_address, 3000)
    await net.chain.mine(1)
    confirmed = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    assert confirmed.amount_confirmed == "5000" and len(confirmed.transfers) == 2


async def test_transfer_to_unwatched_address_is_ignored(net):
    tap = await TransferTap().start(net.nc)
    try:
        payment = await watched_payment(net, amount="777")
        stranger = new_address()
        await net.chain.send_eth(stranger, 777)
        await net.chain.send_token(stranger, 777)
        await net.chain.send_eth(payment.deposit_address, 777)
        await wait_status(net.merchant, payment.payment_id, DETECTED, CONFIRMED)
        await eventually(lambda: _true_async(len(tap.to(payment.deposit_address)) == 1), timeout=5)
        assert tap.to(stranger) == []
    finally:
        await tap.stop()


async def _true_async(value):
    return value


async def test_zero_value_and_reverted_transfers_are_not_payments(net):
    payment = await watched_payment(net, amount="500")
    tap = await TransferTap().start(net.nc)
    try:
        await net.chain.send_token(payment.deposit_address, 0)  # address-poisoning spam
        # A reverted transfer: more TUSD than account 5 has.
        data = _transfer(payment.deposit_address, 10**30)
        raw, tx = await net.chain.signed(5, to=TOKEN_ADDRESS, data=data, gas=100_000)
        await net.chain.send_raw(raw)
        receipt = await net.chain.receipt(tx)
        assert int(receipt["status"], 16) == 0
        await net.chain.send_eth(payment.deposit_address, 500)
        confirmed_head = await net.chain.mine(1)
        await wait_cursor(net.app.port, confirmed_head)
        done = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
        assert len(done.transfers) == 1 and done.transfers[0].amount == "500"
        assert len(tap.to(payment.deposit_address)) == 1
    finally:
        await tap.stop()


def _transfer(to: str, amount: int) -> str:
    from tools.pay import transfer_calldata

    return transfer_calldata(to, amount)


async def test_address_learned_late_is_backfilled(net):
    """A payment paid before any listener knew its address (here: a fresh
    listener with its own state starts after the payment) is still found,
    from the payment's from_block."""
    payment = await watched_payment(net, amount="4242")
    await net.chain.send_eth(payment.deposit_address, 4242)
    await wait_status(net.merchant, payment.payment_id, DETECTED, CONFIRMED)
    other = await net.new_merchant()
    late = await other.create(chain_id=CHAIN_ID, asset="ETH", amount="99")
    await net.chain.send_eth(late.deposit_address, 99)
    await net.chain.mine(2)
    # The running listener backfills too, so check the ledger saw it exactly once.
    confirmed = await wait_status(other, late.payment_id, CONFIRMED)
    assert len(confirmed.transfers) == 1
    tap = await TransferTap().start(net.nc)
    try:
        async with net.listener(state_bucket="late-state", lease_bucket="late-leases") as fresh:
            await eventually(lambda: _true_async(len(tap.to(late.deposit_address)) >= 1), timeout=15)
            s = await status(fresh.port)
            assert s.leader and s.cursor >= confirmed.transfers[0].block_number
    finally:
        await tap.stop()
    again = await other.get(late.payment_id)
    assert again.status == CONFIRMED and len(again.transfers) == 1 and again.amount_received == "99"


async def test_status_and_health(net):
    head = await net.chain.mine(1)
    s = await wait_cursor(net.app.port, head)
    assert s.chain_id == CHAIN_ID and s.name == "anvil"
    assert s.leader and s.mode == lpb.CONNECTION_MODE_WEBSOCKET
    assert s.head >= head and s.lag == s.head - s.cursor and s.watched_addresses >= 1
    assert s.last_head_at.seconds > 0
    channel, stub = listener_stub(net.app.port)
    async with channel:
        every = await stub.GetStatus(lpb.GetStatusRequest(), metadata=bearer(ADMIN_TOKEN))
        assert [c.chain_id for c in every.chains] == [CHAIN_ID]
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", chain_health_name(SERVICE, CHAIN_ID)):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


async def test_rescan_republishes_and_bad_input_is_refused(net):
    payment = await watched_payment(net, amount="31337")
    await net.chain.send_eth(payment.deposit_address, 31337)
    block = await net.chain.block_number()
    await net.chain.mine(1)
    await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    channel, stub = listener_stub(net.app.port)
    async with channel:
        auth = bearer(ADMIN_TOKEN)
        reply = await stub.Rescan(lpb.RescanRequest(chain_id=CHAIN_ID, from_block=block, to_block=block), metadata=auth)
        assert reply.blocks_scanned == 1 and reply.transfers_published == 1
        after = await net.merchant.get(payment.payment_id)
        assert len(after.transfers) == 1 and after.amount_received == "31337"  # republished, credited once

        head = await net.chain.block_number()
        cases = [
            (
                lpb.RescanRequest(chain_id=CHAIN_ID, from_block=10, to_block=5),
                grpc.StatusCode.INVALID_ARGUMENT,
                "after",
            ),
            (
                lpb.RescanRequest(chain_id=CHAIN_ID, from_block=1, to_block=head + 1000),
                grpc.StatusCode.INVALID_ARGUMENT,
                "beyond the chain head",
            ),
            (lpb.RescanRequest(chain_id=999, from_block=1, to_block=2), grpc.StatusCode.NOT_FOUND, "not watched"),
            (lpb.RescanRequest(chain_id=0, from_block=1, to_block=2), grpc.StatusCode.INVALID_ARGUMENT, "chain_id"),
            (
                lpb.RescanRequest(chain_id=CHAIN_ID, from_block=0, to_block=10**9),
                grpc.StatusCode.INVALID_ARGUMENT,
                "split it",
            ),
        ]
        for request, code, words in cases:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Rescan(request, metadata=auth)
            assert err.value.code() == code, (request, err.value.details())
            assert words in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetStatus(lpb.GetStatusRequest(chain_id=999), metadata=auth)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetStatus(lpb.GetStatusRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Rescan(
                lpb.RescanRequest(chain_id=CHAIN_ID, from_block=1, to_block=1), metadata=bearer("wrong-token")
            )
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_pay_cli_pays_a_payment_and_grpcurl_sees_the_listener(net):
    """The README demo: `python -m tools.pay --payment-id` pays what is due from
    an anvil dev account; the listener's API answers grpcurl through reflection."""
    import asyncio
    import json
    import os
    import shutil
    import sys

    payment = await watched_payment(net, asset="TUSD", amount="1234567")
    env = {**os.environ, "PAYMESH_API_KEY": net.merchant.api_key}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.pay",
        "--ledger",
        f"127.0.0.1:{net.ledger.port}",
        "--payment-id",
        payment.payment_id,
        "--rpc",
        net.anvil.http_url,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    paid = json.loads(out)
    assert paid["asset"] == "TUSD" and paid["amount"] == "1234567" and paid["to"] == payment.deposit_address
    await net.chain.mine(1)
    done = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    assert done.transfers[0].tx_hash == paid["tx_hash"]

    grpcurl = shutil.which("grpcurl", path=os.path.dirname(sys.executable)) or shutil.which("grpcurl")
    if grpcurl is None:
        pytest.skip("grpcurl is not installed")
    proc = await asyncio.create_subprocess_exec(
        grpcurl,
        "-plaintext",
        "-H",
        f"authorization: Bearer {ADMIN_TOKEN}",
        "-d",
        f'{{"chain_id": {CHAIN_ID}}}',
        f"127.0.0.1:{net.app.port}",
        "paymesh.listener.v1.ListenerService/GetStatus",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    chain = json.loads(out)["chains"][0]
    assert chain["leader"] is True and chain["mode"] == "CONNECTION_MODE_WEBSOCKET"
