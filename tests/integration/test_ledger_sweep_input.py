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


def record_request(worker: str, payment, **fields) -> ipb.RecordSweepTransactionRequest:
    """A RecordSweepTransaction of a sweep of `payment` by `worker`; `fields` override."""
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
                **fields,
            }
        ),
    )


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
            return record_request(worker, payment, **{"max_fee_per_gas": "1", **fields})

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


async def expect_precondition(call, request, text: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, caught.value.details()
    assert text in caught.value.details(), caught.value.details()


async def test_a_sweep_job_is_named_by_payment_chain_and_asset(ledger_channel, merchant, js):
    """chain_id and asset name the sweep job (a payment option): empty matches the
    payment's only option, one it does not have is FAILED_PRECONDITION and changes nothing; every
    returned SweepTransaction carries its job's asset, and ListSweepTransactions filters
    by it."""
    internal = igrpc.SweepLedgerServiceStub(ledger_channel)
    payment = await confirmed_payment(merchant, js)
    worker = "worker-sweep-job-key-test"
    claimed = await internal.ClaimSweeps(
        ipb.ClaimSweepsRequest(chain_id=31337, worker_id=worker, limit=500, lease_seconds=60, jobs_per_asset=True),
        metadata=AUTH,
    )
    (sweep_job,) = [j for j in claimed.jobs if j.payment_id == payment.payment_id]
    assert (sweep_job.chain_id, sweep_job.asset) == (31337, "ETH")
    released = False
    try:

        def tx(**fields) -> ipb.RecordSweepTransactionRequest:
            return record_request(worker, payment, **{"max_fee_per_gas": "0", **fields})

        jobs = "its jobs are: ETH on chain 31337"
        await expect_precondition(internal.RecordSweepTransaction, tx(asset="TUSD"), jobs)
        await expect_precondition(
            internal.RecordSweepTransaction, tx(chain_id=1, asset="ETH"), "no sweep job transaction.chain_id 1"
        )
        named = await internal.RecordSweepTransaction(tx(chain_id=31337, asset="ETH"), metadata=AUTH)
        unnamed = await internal.RecordSweepTransaction(tx(nonce=1), metadata=AUTH)
        assert named.transaction.asset == unnamed.transaction.asset == "ETH"  # empty: the payment's own
        updated = await internal.UpdateSweepTransaction(
            ipb.UpdateSweepTransactionRequest(
                tx_hash=unnamed.transaction.tx_hash, state=ipb.SWEEP_TRANSACTION_STATE_BROADCAST
            ),
            metadata=AUTH,
        )
        assert updated.transaction.asset == "ETH"

        async def listed(**fields) -> list[str]:
            page = await internal.ListSweepTransactions(
                ipb.ListSweepTransactionsRequest(payment_id=payment.payment_id, **fields), metadata=AUTH
            )
            assert all(t.asset == "ETH" for t in page.transactions)
            return sorted(t.tx_hash for t in page.transactions)

        both = sorted([named.transaction.tx_hash, unnamed.transaction.tx_hash])
        assert await listed() == await listed(asset="ETH") == both
        assert await listed(asset="TUSD") == []
        page = await internal.ListSweepTransactions(
            ipb.ListSweepTransactionsRequest(payment_id=payment.payment_id, asset="ETH", page_size=1), metadata=AUTH
        )
        assert len(page.transactions) == 1 and page.next_page_token
        nxt = await internal.ListSweepTransactions(
            ipb.ListSweepTransactionsRequest(
                payment_id=payment.payment_id, asset="ETH", page_size=1, page_token=page.next_page_token
            ),
            metadata=AUTH,
        )
        assert sorted([page.transactions[0].tx_hash, nxt.transactions[0].tx_hash]) == both

        await expect_precondition(
            internal.CompleteSweep,
            ipb.CompleteSweepRequest(
                payment_id=payment.payment_id, tx_hash=named.transaction.tx_hash, amount="1000", fee="0", asset="TUSD"
            ),
            "has no sweep job chain_id any and asset 'TUSD'; its jobs are: ETH on chain 31337",
        )
        await expect_precondition(
            internal.ReleaseSweep,
            ipb.ReleaseSweepRequest(
                payment_id=payment.payment_id, worker_id=worker, error="x", retry_after_seconds=1, chain_id=10
            ),
            f"payment {payment.payment_id} has no sweep job chain_id 10",
        )
        # Refused releases changed nothing: the lease is still this worker's.
        again = await internal.ClaimSweeps(
            ipb.ClaimSweepsRequest(chain_id=31337, worker_id=worker, limit=500, lease_seconds=60), metadata=AUTH
        )
        assert payment.payment_id in [j.payment_id for j in again.jobs]
        assert (await merchant.get(payment.payment_id)).status == pb.PAYMENT_STATUS_CONFIRMED  # nothing completed
        for recorded in (named, unnamed):  # nothing left open for another test's claims to resume
            await internal.UpdateSweepTransaction(
                ipb.UpdateSweepTransactionRequest(
                    tx_hash=recorded.transaction.tx_hash, state=ipb.SWEEP_TRANSACTION_STATE_FAILED, error="test"
                ),
                metadata=AUTH,
            )
        await internal.ReleaseSweep(
            ipb.ReleaseSweepRequest(
                payment_id=payment.payment_id,
                worker_id=worker,
                error="test done",
                retry_after_seconds=1,
                chain_id=31337,
                asset="ETH",
            ),
            metadata=AUTH,
        )
        released = True
    finally:
        if not released:
            await internal.ReleaseSweep(
                ipb.ReleaseSweepRequest(
                    payment_id=payment.payment_id, worker_id=worker, error="test done", retry_after_seconds=1
                ),
                metadata=AUTH,
            )


async def test_the_chains_new_signer_takes_over_the_sweep_jobs_its_predecessor_holds(ledger_channel, merchant, js):
    """A sweeper that has just become the chain's signer claims with take_over: the
    jobs the previous signer still holds move to it at once, with the transactions
    that signer recorded (so it resumes them, never signs anew), and the ledger then
    refuses the previous signer's records: it is fenced out."""
    internal = igrpc.SweepLedgerServiceStub(ledger_channel)
    payment = await confirmed_payment(merchant, js)
    old, new = "signer-before-test", "signer-after-test"
    first = await internal.ClaimSweeps(
        ipb.ClaimSweepsRequest(chain_id=31337, worker_id=old, limit=500, lease_seconds=600), metadata=AUTH
    )
    assert payment.payment_id in [j.payment_id for j in first.jobs]
    recorded = record_request(old, payment, max_fee_per_gas="1")
    await internal.RecordSweepTransaction(recorded, metadata=AUTH)

    plain = await internal.ClaimSweeps(
        ipb.ClaimSweepsRequest(chain_id=31337, worker_id=new, limit=500, lease_seconds=60), metadata=AUTH
    )
    assert payment.payment_id not in [j.payment_id for j in plain.jobs]  # leased to the old signer
    taken = await internal.ClaimSweeps(
        ipb.ClaimSweepsRequest(chain_id=31337, worker_id=new, limit=500, lease_seconds=60, take_over=True),
        metadata=AUTH,
    )
    try:
        (job,) = [j for j in taken.jobs if j.payment_id == payment.payment_id]
        assert [t.tx_hash for t in job.transactions] == [recorded.transaction.tx_hash]
        await expect_precondition(
            internal.RecordSweepTransaction,
            record_request(old, payment, max_fee_per_gas="2", nonce=1),
            f"worker {old!r} does not hold the sweep lease",
        )
    finally:
        for j in taken.jobs:
            await internal.ReleaseSweep(
                ipb.ReleaseSweepRequest(
                    payment_id=j.payment_id, worker_id=new, error="test done", retry_after_seconds=1
                ),
                metadata=AUTH,
            )
