"""Sweep bookkeeping input that reached varchar columns unchecked (INTERNAL): a
worker_id longer than the lease column, a replaces_tx_hash or token_address that
is no hash or address. Each is INVALID_ARGUMENT naming the field, and stores nothing."""

from __future__ import annotations

import grpc
import pytest
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as igrpc

from tests.support.ledger import (
    SWEEP_LEDGER_TOKEN,
    bearer,
    eventually,
    next_block,
    publish_chain,
    publish_head,
    random_hash,
    transfer_event,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
AUTH = bearer(SWEEP_LEDGER_TOKEN)
TREASURY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


async def confirmed_payment(merchant, js) -> pb.Payment:
    payment = await merchant.create(amount="1000")
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(payment.deposit_address, 1000, block=block))
    await publish_head(js, block + 1)

    async def confirmed():
        p = await merchant.get(payment.payment_id)
        return p if p.status == pb.PAYMENT_STATUS_CONFIRMED else None

    return await eventually(confirmed)


async def expect_invalid(call, request, text: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert text in caught.value.details()


async def test_sweep_bookkeeping_refuses_what_its_columns_cannot_hold(ledger_channel, merchant, js):
    internal = igrpc.SweepLedgerServiceStub(ledger_channel)
    payment = await confirmed_payment(merchant, js)
    await expect_invalid(
        internal.ClaimSweeps,
        ipb.ClaimSweepsRequest(chain_id=31337, worker_id="w" * 129, limit=500, lease_seconds=60),
        "worker_id must be 1 to 128 characters",
    )
    worker = "worker-sweep-input-test"
    claimed = await internal.ClaimSweeps(
        ipb.ClaimSweepsRequest(chain_id=31337, worker_id=worker, limit=500, lease_seconds=60), metadata=AUTH
    )
    assert payment.payment_id in [j.payment_id for j in claimed.jobs]
    try:

        def tx(**fields) -> ipb.RecordSweepTransactionRequest:
            return ipb.RecordSweepTransactionRequest(
                worker_id=worker,
                transaction=ipb.SweepTransaction(
                    **{
                        "payment_id": payment.payment_id,
                        "kind": ipb.SWEEP_TRANSACTION_KIND_SWEEP,
                        "tx_hash": random_hash(),
                        "raw_tx": b"\x02\xf8",
                        "from_address": payment.deposit_address,
                        "to_address": TREASURY,
                        "amount": "1000",
                        "gas_limit": 21_000,
                        "max_fee_per_gas": "1",
                        **fields,
                    }
                ),
            )

        await expect_invalid(
            internal.RecordSweepTransaction,
            tx(replaces_tx_hash="0x" + "ab" * 40),
            "transaction.replaces_tx_hash must be 0x followed by 64 hex digits",
        )
        await expect_invalid(
            internal.RecordSweepTransaction,
            tx(token_address="0x" + "1" * 50),
            "transaction.token_address is not an EVM address",
        )
        listed = await internal.ListSweepTransactions(
            ipb.ListSweepTransactionsRequest(payment_id=payment.payment_id), metadata=AUTH
        )
        assert list(listed.transactions) == []
    finally:
        await internal.ReleaseSweep(
            ipb.ReleaseSweepRequest(
                payment_id=payment.payment_id, worker_id=worker, error="test done", retry_after_seconds=1
            ),
            metadata=AUTH,
        )
