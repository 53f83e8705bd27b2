"""The real grpcurl binary against the ledger, the way the README tells operators
and merchants to use it: reflection only, no proto files."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ledger import ADMIN_TOKEN, fresh_xpub

pytestmark = pytest.mark.asyncio(loop_scope="session")

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


def grpcurl(port: int, *args: str, token: str = "", data: dict | None = None) -> tuple[int, str]:
    cmd = [GRPCURL, "-plaintext", "-max-time", "20"]
    if token:
        cmd += ["-H", f"authorization: Bearer {token}"]
    if data is not None:
        cmd += ["-d", json.dumps(data)]
    cmd += [f"127.0.0.1:{port}", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout + result.stderr


async def run(*args, **kwargs):
    return await asyncio.to_thread(grpcurl, *args, **kwargs)


async def test_readme_flow_with_grpcurl(ledger):
    port = ledger.port
    code, out = await run(port, "list")
    assert code == 0, out
    for service in (
        "paymesh.ledger.v1.PaymentService",
        "paymesh.ledger.v1.MerchantAdminService",
        "paymesh.ledger.v1.AddressFeedService",
        "paymesh.ledger.v1.SweepLedgerService",
        "paymesh.ledger.v1.MerchantDirectoryService",
        "grpc.health.v1.Health",
    ):
        assert service in out
    code, out = await run(port, "grpc.health.v1.Health/Check")
    assert code == 0 and "SERVING" in out, out

    xpub, account = fresh_xpub()
    code, out = await run(
        port,
        "paymesh.ledger.v1.MerchantAdminService/CreateMerchant",
        token=ADMIN_TOKEN,
        data={
            "name": "grpcurl shop",
            "xpub": xpub,
            "derivation_path": f"m/44'/60'/{account}'",
            "treasuries": [{"chain_id": 31337, "address": "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"}],
        },
    )
    assert code == 0, out
    merchant = json.loads(out)
    api_key = merchant["api_key"]  # grpcurl 1.8 prints proto field names

    code, out = await run(
        port,
        "paymesh.ledger.v1.PaymentService/CreatePayment",
        token=api_key,
        data={
            "chain_id": 31337,
            "asset": "ETH",
            "amount": "1000000000000000",
            "idempotency_key": "readme-1",
            "merchant_order_id": "order-42",
        },
    )
    assert code == 0, out
    payment = json.loads(out)["payment"]
    assert payment["status"] == "PAYMENT_STATUS_PENDING"
    assert payment["amount_due"] == "1000000000000000"

    code, out = await run(
        port, "paymesh.ledger.v1.PaymentService/GetPayment", token=api_key, data={"payment_id": payment["payment_id"]}
    )
    assert code == 0, out
    assert json.loads(out)["payment"]["deposit_address"] == payment["deposit_address"]

    # Bad input through grpcurl: a clear status and message, no stack trace.
    code, out = await run(
        port,
        "paymesh.ledger.v1.PaymentService/CreatePayment",
        token=api_key,
        data={"chain_id": 31337, "asset": "ETH", "amount": "1.5"},
    )
    assert code != 0
    assert "InvalidArgument" in out and "digits only" in out and "Traceback" not in out
    code, out = await run(port, "paymesh.ledger.v1.PaymentService/GetPayment", data={"payment_id": "x"})
    assert code != 0 and "Unauthenticated" in out
