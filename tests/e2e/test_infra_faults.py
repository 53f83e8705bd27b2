"""Scenario 3: infrastructure faults under the running mesh. Postgres restarted,
NATS restarted (JetStream data kept), anvil's RPC unreachable for 30 s (the
process frozen). The mesh recovers by itself, health says NOT_SERVING while a
dependency is down, and nothing is lost: payments paid during each fault are
still detected, confirmed and swept, and their webhooks delivered."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time

import grpc
import pytest
from eth_utils import to_checksum_address
from grpc_health.v1 import health_pb2, health_pb2_grpc
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_pb2 as pb

from services.common.lifecycle import chain_health_name
from services.listener.app import SERVICE
from tests.support.ledger import create_merchant, eventually, fresh_xpub
from tests.support.webhooks import WebhookReceiver, ok

SERVING = health_pb2.HealthCheckResponse.SERVING


async def health(addr: str, service: str = "") -> int:
    try:
        async with grpc.aio.insecure_channel(addr) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
            return reply.status
    except grpc.aio.AioRpcError:
        return -1


async def wait_health(addr: str, serving: bool, service: str = "", within: float = 30) -> None:
    async def check():
        return (await health(addr, service) == SERVING) == serving

    await eventually(check, timeout=within, interval=0.2)


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(600)
async def test_mesh_recovers_from_postgres_nats_and_rpc_outages(mesh, chain):
    treasury = to_checksum_address("0x" + secrets.token_hex(20))
    async with WebhookReceiver(ok()) as receiver, grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        xpub, account = fresh_xpub()
        merchant = await create_merchant(
            channel,
            xpub,
            derivation_path=f"m/44'/60'/{account}'",
            webhook_url=receiver.url,
            treasuries=[apb.Treasury(chain_id=31337, address=treasury)],
        )
        paid = []

        async def pay_one(tag: str) -> None:
            payment = await merchant.create(amount=str(10**15), idempotency_key=f"fault-{tag}")
            await chain.send_eth(payment.deposit_address, 10**15, key_index=4)
            paid.append(payment.payment_id)

        await pay_one("before")

        # 1. Postgres down: the ledger and the notifier say NOT_SERVING, the
        #    listener keeps publishing (NATS holds the events), then all resumes.
        pg = mesh.stack.postgres
        pg.stop()
        await wait_health(mesh.addr("ledger"), serving=False)
        await wait_health(mesh.addr("notifier"), serving=False)
        with pytest.raises(grpc.aio.AioRpcError):  # the merchant API needs Postgres: a clear error, no hang
            await merchant.create(amount="1", idempotency_key="fault-nodb")
        pg.start()
        await wait_health(mesh.addr("ledger"), serving=True)
        await wait_health(mesh.addr("notifier"), serving=True)
        await pay_one("after-postgres")

        # 2. NATS restarted (JetStream data on disk): every service reconnects.
        mesh.stack.nats.stop()
        await wait_health(mesh.addr("ledger"), serving=False)
        mesh.stack.nats.start()
        for name in ("ledger", "listener", "sweeper", "notifier"):
            await wait_health(mesh.addr(name), serving=True, within=60)
        await pay_one("after-nats")

        # 3. anvil unreachable for 30 s (frozen): the chain's health is
        #    NOT_SERVING on the listener; a payment broadcast just before is
        #    picked up once the node answers again.
        payment = await merchant.create(amount=str(10**15), idempotency_key="fault-rpc")
        await chain.send_eth(payment.deposit_address, 10**15, key_index=4)
        paid.append(payment.payment_id)
        os.kill(mesh.stack.anvil.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            await wait_health(
                mesh.addr("listener"), serving=False, service=chain_health_name(SERVICE, 31337), within=28
            )
            await asyncio.sleep(max(0.0, 30 - (time.monotonic() - frozen_at)))
        finally:
            os.kill(mesh.stack.anvil.pid, signal.SIGCONT)
        await wait_health(mesh.addr("listener"), serving=True, service=chain_health_name(SERVICE, 31337), within=60)

        # Nothing lost: every payment ends swept, every event delivered.
        async def all_swept():
            states = [(await merchant.get(pid)).status for pid in paid]
            return all(s == pb.PAYMENT_STATUS_SWEPT for s in states)

        await eventually(all_swept, timeout=180, interval=1)
        for pid in paid:
            p = await merchant.get(pid)
            assert p.amount_confirmed == str(10**15) and p.sweep_dust == "0"
            assert int(p.amount_swept) + int(p.sweep_fee) == 10**15  # to the treasury + the sweep's fee

        def swept_webhooks() -> set[str]:
            return {
                r.json()["data"]["payment"]["payment_id"]
                for r in receiver.succeeded()
                if r.json()["type"] == "payment.swept"
            }

        await receiver.wait_for(lambda: set(paid) <= swept_webhooks(), within=120)
