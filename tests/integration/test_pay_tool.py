"""`python -m tools.pay --payment-id` as a user runs it, against the real ledger
and anvil: partly paid pays the remainder, paid in full sends nothing (exit 0),
a cancelled payment is refused (exit 3) and nothing is sent."""

from __future__ import annotations

import json
import os
import sys

import pytest
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb

from tests.support.ledger import eventually, next_block, publish_chain, publish_head, transfer_event
from tests.support.procs import run_command
from tools import devstack
from tools.pay import DEV_ADDRESSES

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def run_pay(ledger, anvil, api_key: str, payment_id: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_")}
    env["PAYMESH_API_KEY"] = api_key
    return await run_command(
        sys.executable,
        "-m",
        "tools.pay",
        "--ledger",
        f"127.0.0.1:{ledger.port}",
        "--rpc",
        anvil.http_url,
        "--payment-id",
        payment_id,
        env=env,
    )


def balance(anvil, address: str) -> int:
    return int(devstack.rpc_call(anvil.http_url, "eth_getBalance", [address, "latest"]), 16)


def sent(anvil) -> int:
    return int(devstack.rpc_call(anvil.http_url, "eth_getTransactionCount", [DEV_ADDRESSES[0], "latest"]), 16)


async def status_is(merchant, payment_id: str, status: int):
    async def check():
        p = await merchant.get(payment_id)
        return p if p.status == status else None

    return await eventually(check, timeout=30)


async def test_partly_paid_pays_the_remainder_then_nothing(ledger, merchant, js, anvil):
    payment = await merchant.create(amount="1000")
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 400, block=next_block()))
    await status_is(merchant, payment.payment_id, pb.PAYMENT_STATUS_DETECTED)

    code, out, err = await run_pay(ledger, anvil, merchant.api_key, payment.payment_id)
    assert code == 0, err
    assert json.loads(out)["amount"] == "600" and "remaining 600" in err
    assert balance(anvil, payment.deposit_address) == 600

    # The ledger learns of the rest (as the listener would tell it) and confirms: nothing more to pay.
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 600, block=block))
    await publish_head(js, block + 5)
    await status_is(merchant, payment.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    before = sent(anvil)
    code, out, err = await run_pay(ledger, anvil, merchant.api_key, payment.payment_id)
    assert code == 0, err
    assert out.startswith("nothing to pay") and "PAYMENT_STATUS_CONFIRMED" in out and "1000 of 1000" in out
    assert sent(anvil) == before and balance(anvil, payment.deposit_address) == 600


async def test_cancelled_payment_is_refused(ledger, merchant, anvil):
    payment = await merchant.create(amount="1000")
    await merchant.payments.CancelPayment(
        spb.CancelPaymentRequest(payment_id=payment.payment_id), metadata=merchant.auth
    )
    before = sent(anvil)
    code, out, err = await run_pay(ledger, anvil, merchant.api_key, payment.payment_id)
    assert code == 3, out + err
    assert "was cancelled" in err and "takes no more money" in err and "Traceback" not in err
    assert sent(anvil) == before and balance(anvil, payment.deposit_address) == 0
