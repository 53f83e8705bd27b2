"""The listener as a real process, killed with SIGKILL: at the worst moment
(events published, cursor not saved), at a random moment of a stream of
payments, and as the leader of two replicas. Nothing is missed, nothing is
credited twice, and the standby takes over."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import pytest_asyncio
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.listener.v1 import listener_service_pb2 as lpb

from tests.support.chain import CHAIN_ID, mesh, status, wait_status, wait_watching_all
from tests.support.ledger import ADMIN_TOKEN, SERVICE_TOKEN_ENV, eventually
from tools import devstack
from tools.services import ServiceProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

CONFIRMED = pb.PAYMENT_STATUS_CONFIRMED


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def net(postgres, tmp_path_factory):
    async with mesh(postgres, tmp_path_factory.mktemp("listener-crash"), database="listener_crash") as m:
        yield m


def listener_process(net, name: str, buckets: str) -> ServiceProcess:
    env = {
        "PAYMESH_NATS_URL": net.nats.url,
        "PAYMESH_CHAINS_FILE": str(net.chains_file),
        "PAYMESH_LEDGER_ADDR": f"127.0.0.1:{net.ledger.port}",
        "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
        **SERVICE_TOKEN_ENV,
        "PAYMESH_CHAIN_IDS": f"[{CHAIN_ID}]",
        "PAYMESH_LEASE_TTL_SECONDS": "2",
        "PAYMESH_POLL_INTERVAL_SECONDS": "0.1",
        "PAYMESH_STATE_BUCKET": f"{buckets}-state",
        "PAYMESH_LEASE_BUCKET": f"{buckets}-leases",
        "PAYMESH_REPLICA_ID": name,
        "PAYMESH_SHUTDOWN_GRACE_SECONDS": "0.5",
    }
    return ServiceProcess("services.listener", env, net.root / f"{name}.log", devstack.free_port())


async def started(proc: ServiceProcess, **extra) -> ServiceProcess:
    await asyncio.to_thread(proc.start, extra or None)
    return proc


async def pay(net, payment) -> None:
    amount = int(payment.amount_due)
    if payment.asset == "ETH":
        await net.chain.send_eth(payment.deposit_address, amount)
    else:
        await net.chain.send_token(payment.deposit_address, amount)


async def assert_paid_once(net, payments) -> None:
    for p in payments:
        done = await wait_status(net.merchant, p.payment_id, CONFIRMED, timeout=30)
        assert len(done.transfers) == 1, done
        assert done.amount_received == done.amount_due == done.amount_confirmed


async def new_payments(net, n: int, tag: str):
    out = []
    for i in range(n):
        asset = "TUSD" if i % 3 == 2 else "ETH"
        out.append(await net.merchant.create(asset=asset, amount=str(10_000 + i), idempotency_key=f"{tag}-{i}"))
    return out


async def test_killed_after_publish_before_cursor_saved(net):
    tag = secrets.token_hex(3)
    proc = listener_process(net, f"crash-a-{tag}", f"crash-{tag}")
    try:
        await started(proc, PAYMESH_FAILPOINTS="listener.after_publish_before_cursor")
        payments = await new_payments(net, 12, tag)
        await wait_watching_all(proc.port, net.database_url)
        await pay(net, payments[0])  # the listener publishes this block, then dies
        code = await asyncio.to_thread(proc.wait_exit, 15)
        assert code == -9

        for p in payments[1:4]:  # paid while no listener runs
            await pay(net, p)
        await net.chain.automine(False)  # several in one block
        try:
            for p in payments[4:8]:
                amount = int(p.amount_due)
                if p.asset == "ETH":
                    await net.chain.send_eth(p.deposit_address, amount, key_index=3, wait=False)
                else:
                    await net.chain.send_token(p.deposit_address, amount, wait=False)
            await net.chain.mine(1)
        finally:
            await net.chain.automine(True)

        await started(proc)  # the same replica comes back (its lease lapses first)
        for p in payments[8:]:
            await pay(net, p)
        await net.chain.mine(2)
        await assert_paid_once(net, payments)
        s = await status(proc.port)
        assert s.leader and s.cursor >= (await net.chain.block_number()) - 1
    finally:
        proc.kill()


async def test_killed_at_a_random_moment_of_a_stream(net):
    tag = secrets.token_hex(3)
    proc = listener_process(net, f"crash-b-{tag}", f"crash-{tag}")
    try:
        await started(proc)
        payments = await new_payments(net, 20, tag)
        await wait_watching_all(proc.port, net.database_url)

        async def customers():
            for p in payments:
                await pay(net, p)
                await asyncio.sleep(0.05)

        stream = asyncio.create_task(customers())
        await asyncio.sleep(0.4)
        proc.kill()
        await asyncio.sleep(0.5)
        await started(proc)
        await stream
        await net.chain.mine(2)
        await assert_paid_once(net, payments)
    finally:
        proc.kill()


async def test_standby_takes_over_when_the_leader_dies(net):
    tag = secrets.token_hex(3)
    one = listener_process(net, f"replica-1-{tag}", f"ha-{tag}")
    two = listener_process(net, f"replica-2-{tag}", f"ha-{tag}")
    try:
        await started(one)
        await started(two)

        async def roles():
            a, b = await status(one.port), await status(two.port)
            return (a, b) if a.leader != b.leader else None

        a, b = await eventually(roles, timeout=15)
        leader, standby = (one, two) if a.leader else (two, one)
        standby_status = b if a.leader else a
        assert standby_status.mode == lpb.CONNECTION_MODE_STANDBY

        first, second = await new_payments(net, 2, tag)
        await wait_watching_all(leader.port, net.database_url)
        await pay(net, first)
        await net.chain.mine(1)
        await wait_status(net.merchant, first.payment_id, CONFIRMED)

        leader.kill()
        await pay(net, second)  # mined while nobody leads
        await net.chain.mine(1)

        async def took_over():
            s = await status(standby.port)
            return s if s.leader else None

        await eventually(took_over, timeout=15)
        await assert_paid_once(net, [first, second])
    finally:
        one.kill()
        two.kill()
