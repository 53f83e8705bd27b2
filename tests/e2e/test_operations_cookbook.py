"""Every grpcurl command of docs/OPERATIONS.md's cookbook, and every command of
its dead-letter section (python -m services.common.dlq), run as written (bash,
the real grpcurl binary) against a live mesh, so the guide cannot rot."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import nats
import pytest
from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc
from paymesh.notifier.v1 import notifier_service_pb2 as npb
from paymesh.notifier.v1 import notifier_service_pb2_grpc as ngrpc

from tests.support.ledger import ADMIN_TOKEN, MerchantHandle, bearer, eventually, fresh_xpub
from tests.support.webhooks import WebhookReceiver, ok

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def cookbook_commands() -> list[str]:
    doc = (ROOT / "docs" / "OPERATIONS.md").read_text()
    section = doc[doc.index("## 6. grpcurl cookbook") : doc.index("## 7.")]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("grpcurl ")]


def dlq_commands() -> list[str]:
    doc = (ROOT / "docs" / "OPERATIONS.md").read_text()
    section = doc[doc.index("### Inspecting and replaying dead letters") :]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("python -m services.common.dlq ")
    ]


def run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.asyncio(loop_scope="session")
async def test_every_cookbook_command_works(mesh, chain):
    commands = cookbook_commands()
    assert len(commands) >= 20
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "LEDGER": mesh.addr("ledger"),
        "LISTENER": mesh.addr("listener"),
        "SWEEPER": mesh.addr("sweeper"),
        "NOTIFIER": mesh.addr("notifier"),
        "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
        "ADMIN": f"authorization: Bearer {ADMIN_TOKEN}",
    }
    async with WebhookReceiver(ok()) as receiver, grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        xpub, account = fresh_xpub()
        env.update(XPUB=xpub, ACCOUNT=str(account), WEBHOOK_URL=receiver.url)
        ran = 0
        for command in commands:
            if "SWEPT_PAYMENT_ID" in command and "SWEPT_PAYMENT_ID" not in env:
                # A payment paid and swept through the mesh, for the sweeper's commands.
                merchant = MerchantHandle(
                    env["MERCHANT_ID"], env["PAYMESH_API_KEY"], xpub, "", sgrpc.PaymentServiceStub(channel)
                )
                payment = await merchant.create(asset="ETH", amount="1000000000000000")
                await chain.send_eth(payment.deposit_address, 10**15, key_index=3)

                async def swept(pid=payment.payment_id, m=merchant):
                    return (await m.get(pid)).status == 9  # PAYMENT_STATUS_SWEPT

                await eventually(swept, timeout=60)
                env["SWEPT_PAYMENT_ID"] = payment.payment_id
            if "DELIVERY_ID" in command and "DELIVERY_ID" not in env:
                stub = ngrpc.NotifierServiceStub(grpc.aio.insecure_channel(mesh.addr("notifier")))

                async def delivered(stub=stub):
                    reply = await stub.ListDeliveries(
                        npb.ListDeliveriesRequest(merchant_id=env["MERCHANT_ID"]), metadata=bearer(ADMIN_TOKEN)
                    )
                    return reply.deliveries[0].delivery_id if reply.deliveries else None

                env["DELIVERY_ID"] = await eventually(delivered, timeout=30)
            if "OTHER_PAYMENT_ID" in command and "OTHER_PAYMENT_ID" not in env:
                out = run(
                    'grpcurl -plaintext -H "$MERCHANT" -d \'{"chain_id": 31337, "asset": "ETH", '
                    '"amount": "5"}\' $LEDGER paymesh.ledger.v1.PaymentService/CreatePayment',
                    env,
                )
                env["OTHER_PAYMENT_ID"] = json.loads(out.stdout)["payment"]["payment_id"]
            result = await asyncio.to_thread(run, command, env)
            streaming = "-max-time" in command
            assert result.returncode == 0 or (streaming and "payment_id" in result.stdout), (
                f"{command}\n{result.stdout}\n{result.stderr}"
            )
            ran += 1
            if "CreateMerchant" in command:
                created = json.loads(result.stdout)
                env.update(
                    MERCHANT_ID=created["merchant"]["merchant_id"],
                    PAYMESH_API_KEY=created["api_key"],
                    MERCHANT=f"authorization: Bearer {created['api_key']}",
                )
            if "PaymentService/CreatePayment" in command:
                env["PAYMENT_ID"] = json.loads(result.stdout)["payment"]["payment_id"]
        assert ran == len(commands)

    # Dead letters: a malformed chain event, which the ledger gives up on at once.
    commands = dlq_commands()
    assert {c.split()[3] for c in commands} == {"list", "show", "replay", "purge"}
    env["PAYMESH_NATS_URL"] = mesh.env["PAYMESH_NATS_URL"]
    nc = await nats.connect(mesh.env["PAYMESH_NATS_URL"])
    try:
        js = nc.jetstream(timeout=10)
        await js.publish("paymesh.chain.31337.transfer", b"\x00 not a TransferObserved", stream="CHAIN")

        async def dead_lettered():
            out = await asyncio.to_thread(run, "python -m services.common.dlq list --durable ledger-chain --json", env)
            rows = json.loads(out.stdout) if out.returncode == 0 else []
            return rows[-1]["seq"] if rows else None

        env["DLQ_SEQ"] = str(await eventually(dead_lettered, timeout=30))
        for command in commands:
            result = await asyncio.to_thread(run, command, env)
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            if " show " in command:
                assert "paymesh.chain.31337.transfer" in result.stdout and "Paymesh-Error" in result.stdout
            if " replay " in command:
                assert f"dead letter {env['DLQ_SEQ']}: replayed to paymesh.chain.31337.transfer" in result.stdout
                # Still malformed: the ledger dead-letters the replayed copy again, which purge then removes.
                env["DLQ_SEQ"] = str(await eventually(dead_lettered, timeout=30))
            if " purge " in command:
                assert "removed 1 dead letter(s)" in result.stdout
        final = await asyncio.to_thread(run, "python -m services.common.dlq list --durable ledger-chain", env)
        assert final.stdout.strip() == "no dead letters"
    finally:
        await nc.close()
