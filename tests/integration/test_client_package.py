"""paymesh-client installs on its own (`pip install ./clients/python` into a
fresh virtualenv, none of the gateway in it) and the README's example runs
with it against the real ledger."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import run_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("client-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(ROOT / "clients" / "python"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


def in_venv(venv: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=venv.parent,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )


def test_the_package_stands_alone(client_venv: Path):
    out = in_venv(
        client_venv,
        "import paymesh_client, paymesh.ledger.v1.payment_pb2 as pb, "
        "paymesh.events.v1.payment_events_pb2; print(paymesh_client.__file__, pb.__file__)",
    )
    assert out.returncode == 0, out.stderr
    assert all(path.startswith(str(client_venv)) for path in out.stdout.split())
    for absent in ("services", "tools", "sqlalchemy", "paymesh.ledger.v1.merchant_admin_service_pb2"):
        assert in_venv(client_venv, f"import {absent}").returncode != 0, f"{absent} should not be installed"


@pytest.mark.asyncio(loop_scope="session")
async def test_example_runs_against_the_ledger(client_venv: Path, ledger, merchant):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_") and k != "PYTHONPATH"}
    env["PAYMESH_API_KEY"] = merchant.api_key
    code, out, err = await run_command(
        str(client_venv / "bin" / "python"),
        str(ROOT / "examples" / "client_example.py"),
        "--ledger",
        f"127.0.0.1:{ledger.port}",
        "--amount",
        "12345",
        env=env,
        cwd=str(client_venv.parent),
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 4, lines
    created = re.fullmatch(
        r"created (pay_[0-9a-f]{32}) for order (example-[0-9a-f]{8}): send 12345 wei to "
        r"(0x[0-9a-fA-F]{40}) on chain 31337 \(PAYMENT_STATUS_PENDING\)",
        lines[0],
    )
    assert created, lines[0]
    payment_id, order = created.group(1), created.group(2)
    assert lines[1] == f"read back {payment_id}: PAYMENT_STATUS_PENDING, received 0 of 12345"
    assert lines[2] == f"listed by order id {order}: {payment_id}"
    assert lines[3] == f"cancelled {payment_id}: PAYMENT_STATUS_CANCELLED"
    assert (await merchant.get(payment_id)).merchant_order_id == order

    env["PAYMESH_API_KEY"] = "pmk_wrong"
    code, out, err = await run_command(
        str(client_venv / "bin" / "python"),
        str(ROOT / "examples" / "client_example.py"),
        "--ledger",
        f"127.0.0.1:{ledger.port}",
        env=env,
        cwd=str(client_venv.parent),
    )
    assert code == 1 and err.startswith("error: UNAUTHENTICATED: ") and "Traceback" not in err


PAYOUTS_SCRIPT = """
import asyncio, sys
import grpc
from paymesh_client import PaymeshClient, PayoutState

async def main(target, key):
    async with PaymeshClient(target, api_key=key) as client:
        payment = await client.create_payment(chain_id=31337, asset="ETH", amount=1000)
        try:
            await client.create_refund(payment.payment_id, excess=True, destination="0x" + "ab" * 20)
        except grpc.aio.AioRpcError as err:
            print("refund", err.code().name)
        payout = await client.create_payout(
            chain_id=31337, asset="ETH", amount=5, destination="0x" + "cd" * 20, idempotency_key="client-po"
        )
        again = await client.create_payout(
            chain_id=31337, asset="ETH", amount=5, destination="0x" + "cd" * 20, idempotency_key="client-po"
        )
        print("payout", PayoutState.Name(payout.state), again.payout_id == payout.payout_id)
        batch = await client.create_payout_batch(chain_id=31337, asset="ETH", items=[("0x" + "ef" * 20, 7)])
        print("batch", len(batch), batch[0].amount)
        print("cancelled", PayoutState.Name((await client.cancel_payout(payout.payout_id)).state))
        wallet = await client.payout_wallet(31337)  # this ledger's chain has no node: no balances, the address
        print("wallet", wallet.derivation_path.endswith("/1/0"), wallet.address.startswith("0x"), not wallet.balances,
              "balance query" in wallet.balances_error)

        key, secret = await client.create_api_key("ci", ["payments:read"])
        print("key", list(key.scopes) == [1], secret.startswith("pmk_"), len(await client.list_api_keys()) >= 2)
        print("revoked", (await client.revoke_api_key(key.key_id)).HasField("revoked_at"))
        actions = [e.action async for e in client.audit_entries()]
        print("audit", actions[:2])

        endpoint, whsec = await client.create_webhook_endpoint("http://127.0.0.1:9/hook", ["payment.confirmed"])
        changed = await client.update_webhook_endpoint(endpoint.endpoint_id, event_types=["refund.*"], enabled=False)
        rolled, newer = await client.roll_webhook_secret(endpoint.endpoint_id)
        print("endpoint", whsec.startswith("whsec_"), list(changed.event_types), changed.enabled,
              newer != whsec and rolled.HasField("previous_secret_expires_at"))
        print("endpoints", [e.endpoint_id for e in await client.list_webhook_endpoints()] == [endpoint.endpoint_id])
        await client.delete_webhook_endpoint(endpoint.endpoint_id)
        print("changes", await client.config_changes(), len(await client.list_webhook_endpoints()))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.asyncio(loop_scope="session")
async def test_refunds_and_payouts_from_the_package(client_venv: Path, ledger, merchant, tmp_path):
    script = tmp_path / "payouts.py"
    script.write_text(PAYOUTS_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_") and k != "PYTHONPATH"}
    code, out, err = await run_command(
        str(client_venv / "bin" / "python"),
        str(script),
        f"127.0.0.1:{ledger.port}",
        merchant.api_key,
        env=env,
        cwd=str(client_venv.parent),
    )
    assert code == 0, err
    assert out.splitlines() == [
        "refund FAILED_PRECONDITION",  # nothing confirmed yet: nothing to refund
        "payout PAYOUT_STATE_APPROVED True",  # no approval needed; the same key, the same payout
        "batch 1 7",
        "cancelled PAYOUT_STATE_CANCELLED",
        "wallet True True True True",
        "key True True True",
        "revoked True",
        "audit ['api_key.revoked', 'api_key.created']",
        "endpoint True ['refund.*'] False True",
        "endpoints True",
        "changes [] 0",
    ]
