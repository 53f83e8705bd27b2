"""A merchant's backend talking to paymesh with paymesh-client (clients/python):
create a payment for an order, read it back, find it by the order id, cancel it.

    pip install ./clients/python          # or use the project's .venv
    PAYMESH_API_KEY=pmk_... python examples/client_example.py --ledger 127.0.0.1:50051

With `make run` going, the API key is the demo merchant's (`make run` prints it;
it is also in .data/demo_merchant.json). Each step prints one line; any gRPC
error is printed as its status and message, with exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid

import grpc
from paymesh_client import PaymentStatus, PaymeshClient


async def run(ledger: str, api_key: str, amount: int) -> None:
    order = f"example-{uuid.uuid4().hex[:8]}"
    async with PaymeshClient(ledger, api_key) as client:
        payment = await client.create_payment(chain_id=31337, asset="ETH", amount=amount, merchant_order_id=order)
        print(
            f"created {payment.payment_id} for order {order}: send {payment.amount_due} wei to "
            f"{payment.deposit_address} on chain {payment.chain_id} ({PaymentStatus.Name(payment.status)})"
        )
        again = await client.get_payment(payment.payment_id)
        print(
            f"read back {again.payment_id}: {PaymentStatus.Name(again.status)}, "
            f"received {again.amount_received} of {again.amount_due}"
        )
        found = [p.payment_id async for p in client.list_payments(merchant_order_id=order)]
        print(f"listed by order id {order}: {', '.join(found)}")
        cancelled = await client.cancel_payment(payment.payment_id, reason="example done")
        print(f"cancelled {cancelled.payment_id}: {PaymentStatus.Name(cancelled.status)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledger", default=os.environ.get("PAYMESH_LEDGER_ADDR", "127.0.0.1:50051"))
    parser.add_argument("--amount", type=int, default=10**16, help="wei (default 0.01 ETH)")
    args = parser.parse_args()
    api_key = os.environ.get("PAYMESH_API_KEY", "")
    if not api_key:
        parser.error("set PAYMESH_API_KEY to the merchant's API key (make run prints the demo merchant's)")
    try:
        asyncio.run(run(args.ledger, api_key, args.amount))
    except grpc.aio.AioRpcError as err:
        print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
