"""`python -m services.ledger admin` as an operator runs it, against the real
ledger: set-webhook keeps the signing secret unless asked to rotate it, and on
the local mesh a rotated API key or secret of the demo merchant reaches
.data/demo_merchant.json, so `make run` and tools.pay keep working."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import grpc
import pytest
from paymesh.ledger.v1 import merchant_directory_service_pb2 as dpb
from paymesh.ledger.v1 import merchant_directory_service_pb2_grpc as dgrpc
from paymesh.ledger.v1 import payment_service_pb2 as spb

from services.common import local_mesh
from tests.support.ledger import ADMIN_TOKEN, MERCHANT_DIRECTORY_TOKEN, bearer
from tests.support.procs import run_command

pytestmark = pytest.mark.asyncio(loop_scope="session")
HOOK = "http://127.0.0.1:9/hook"


async def admin(*args: str, **env_vars: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_")}
    env.update(env_vars)
    return await run_command(sys.executable, "-m", "services.ledger", "admin", *args, env=env)


async def secret_in_force(ledger_channel, merchant_id: str) -> str:
    reply = await dgrpc.MerchantDirectoryServiceStub(ledger_channel).GetWebhookTarget(
        dpb.GetWebhookTargetRequest(merchant_id=merchant_id), metadata=bearer(MERCHANT_DIRECTORY_TOKEN)
    )
    return reply.webhook_secret


async def test_set_webhook_keeps_the_secret_unless_told_to_rotate(ledger, ledger_channel, merchant, tmp_path):
    remote = {
        "PAYMESH_LEDGER_ADDR": f"127.0.0.1:{ledger.port}",
        "PAYMESH_ADMIN_TOKEN": ADMIN_TOKEN,
        "PAYMESH_DATA_DIR": str(tmp_path),
    }  # no local mesh there
    code, out, err = await admin("set-webhook", merchant.merchant_id, "--url", HOOK, **remote)
    assert code == 0, err
    assert json.loads(out)["webhook_secret"] == merchant.webhook_secret
    assert json.loads(out)["merchant"]["webhook_url"] == HOOK
    assert await secret_in_force(ledger_channel, merchant.merchant_id) == merchant.webhook_secret

    # Both at once is refused, nothing changed.
    code, out, err = await admin(
        "set-webhook", merchant.merchant_id, "--url", HOOK + "2", "--secret", "s" * 20, "--rotate-secret", **remote
    )
    assert code == 2 and out == "" and "Traceback" not in err
    assert await secret_in_force(ledger_channel, merchant.merchant_id) == merchant.webhook_secret

    code, out, err = await admin("set-webhook", merchant.merchant_id, "--url", HOOK, "--rotate-secret", **remote)
    assert code == 0, err
    rotated = json.loads(out)["webhook_secret"]
    assert rotated != merchant.webhook_secret and await secret_in_force(ledger_channel, merchant.merchant_id) == rotated

    code, out, err = await admin("set-webhook", merchant.merchant_id, "--url", HOOK, "--secret", "s" * 20, **remote)
    assert code == 0 and await secret_in_force(ledger_channel, merchant.merchant_id) == "s" * 20


async def test_rotations_of_the_demo_merchant_reach_the_demo_file(ledger, ledger_channel, merchant, tmp_path: Path):
    # The files a running `make run` leaves (tools/run_mesh.py), for a mesh whose ledger is this one.
    data = tmp_path / "data"
    data.mkdir()
    local_mesh.write_state(
        data,
        {
            "pid": os.getpid(),
            "pid_start": local_mesh.process_start(os.getpid()),
            "ledger": f"127.0.0.1:{ledger.port}",
            "data_dir": str(data),
        },
    )
    (data / "secrets.env").write_text(f"PAYMESH_ADMIN_TOKEN={ADMIN_TOKEN}\n")
    local_mesh.save_demo(
        data,
        {"merchant_id": merchant.merchant_id, "api_key": merchant.api_key, "webhook_secret": merchant.webhook_secret},
    )
    (data / "demo.txt").write_text(f"export PAYMESH_API_KEY={merchant.api_key}\n")
    local = {"PAYMESH_DATA_DIR": str(data)}  # no address, no tokens: the local mesh's

    code, out, err = await admin("rotate-api-key", merchant.merchant_id, **local)
    assert code == 0, err
    new_key = json.loads(out)["api_key"]
    demo = local_mesh.load_demo(data)
    assert demo["api_key"] == new_key != merchant.api_key
    assert f"export PAYMESH_API_KEY={new_key}" in err
    assert (data / "demo.txt").read_text() == f"export PAYMESH_API_KEY={new_key}\n"
    reply = await merchant.payments.ListPayments(spb.ListPaymentsRequest(page_size=1), metadata=bearer(new_key))
    assert reply is not None  # the key in the demo file is the one that works

    code, out, err = await admin("set-webhook", merchant.merchant_id, "--url", HOOK, **local)
    assert code == 0, err
    assert local_mesh.load_demo(data)["webhook_secret"] == merchant.webhook_secret  # kept, so still in step
    code, out, err = await admin("set-webhook", merchant.merchant_id, "--url", HOOK, "--rotate-secret", **local)
    assert code == 0, err
    assert local_mesh.load_demo(data)["webhook_secret"] == json.loads(out)["webhook_secret"] != merchant.webhook_secret
    assert await secret_in_force(ledger_channel, merchant.merchant_id) == local_mesh.load_demo(data)["webhook_secret"]

    # The old key stopped working; the file has the one that does.
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await merchant.payments.ListPayments(spb.ListPaymentsRequest(page_size=1), metadata=bearer(merchant.api_key))
    assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # Pointed at another ledger than the local mesh's, the CLI neither uses nor touches its files.
    before = (data / "demo_merchant.json").read_text()
    code, out, err = await admin("rotate-api-key", merchant.merchant_id, PAYMESH_LEDGER_ADDR="127.0.0.1:9", **local)
    assert code == 1 and "UNAVAILABLE" in err
    assert (data / "demo_merchant.json").read_text() == before
