"""What services.common.request_check costs per request (a micro-benchmark; no
servers): timeit over requests decoded from their wire bytes, as the gRPC
wrapper sees them; the best of 5 repeats, in microseconds per check.

    python -m bench.bench_request_check [--number 100000]
"""

from __future__ import annotations

import argparse
import timeit

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.ledger.v1 import payment_service_pb2 as spb

from services.common.request_check import check_request


def requests() -> dict[str, object]:
    typical = spb.CreatePaymentRequest(
        chain_id=31337,
        asset="ETH",
        amount="10000000000000000",
        expires_in=Duration(seconds=3600),
        merchant_order_id="order-12345",
        idempotency_key="7f0c2a9e-3d5b-4c1a-9e8f-2b6d4a1c0e9f",
        metadata={"customer": "c-42", "cart": "x" * 40, "note": "gift wrap"},
    )
    listing = spb.ListPaymentsRequest(
        page_size=100, statuses=[1, 2], chain_id=31337, created_after=Timestamp(seconds=1_700_000_000)
    )
    made = {
        "CreatePaymentRequest (7 fields, 3 metadata entries)": typical,
        "CreatePaymentRequest (chain, asset, amount only)": spb.CreatePaymentRequest(
            chain_id=1, asset="ETH", amount="1"
        ),
        "ListPaymentsRequest (5 filters)": listing,
        "GetPaymentRequest": spb.GetPaymentRequest(payment_id="pay_" + "0" * 32),
        "empty request": spb.GetPaymentRequest(),
    }
    return {name: type(m).FromString(m.SerializeToString()) for name, m in made.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=100_000)
    args = parser.parse_args()
    for name, request in requests().items():
        check_request(request)  # compile the plan outside the timing
        best = min(timeit.repeat(lambda r=request: check_request(r), number=args.number, repeat=5))
        decode = type(request).FromString
        wire = request.SerializeToString()
        parse = min(timeit.repeat(lambda d=decode, w=wire: d(w), number=args.number, repeat=5))
        print(f"{name}: {best / args.number * 1e6:.2f} µs per check (decoding it: {parse / args.number * 1e6:.2f} µs)")


if __name__ == "__main__":
    main()
