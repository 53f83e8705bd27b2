"""The sweeper's client of the ledger (SweepLedgerService, PAYMESH_SWEEP_LEDGER_TOKEN):
translates protobuf <-> the domain's plain types; implements ports.SweepLedger.

Every call has a deadline, and a failure becomes a domain error through the shared
services/common/grpc_client (its message says what the sweeper was doing, its
reason is the ledger's), so the sweep can release, retry or give up with a
reason a person can act on.
"""

from __future__ import annotations

import grpc
from paymesh.ledger.v1 import payout_ledger_service_pb2 as plpb
from paymesh.ledger.v1 import payout_ledger_service_pb2_grpc as plgrpc
from paymesh.ledger.v1 import payout_pb2 as popb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as igrpc

from services.common.grpc_client import ServiceClient
from services.common.timestamps import optional_datetime
from services.sweeper.domain.model import Job, PayoutJob, RecordedTx, SignedTx, SweepJobKey, TxKind, TxState

KIND_TO_PB = {TxKind.GAS_TOPUP: ipb.SWEEP_TRANSACTION_KIND_GAS_TOPUP, TxKind.SWEEP: ipb.SWEEP_TRANSACTION_KIND_SWEEP}
PB_TO_KIND = {v: k for k, v in KIND_TO_PB.items()}
STATE_TO_PB = {
    TxState.SIGNED: ipb.SWEEP_TRANSACTION_STATE_SIGNED,
    TxState.BROADCAST: ipb.SWEEP_TRANSACTION_STATE_BROADCAST,
    TxState.MINED: ipb.SWEEP_TRANSACTION_STATE_MINED,
    TxState.CONFIRMED: ipb.SWEEP_TRANSACTION_STATE_CONFIRMED,
    TxState.FAILED: ipb.SWEEP_TRANSACTION_STATE_FAILED,
    TxState.REPLACED: ipb.SWEEP_TRANSACTION_STATE_REPLACED,
}
PB_TO_STATE = {v: k for k, v in STATE_TO_PB.items()}


def _int(text: str) -> int:
    return int(text) if text else 0


def signed_fields(tx: SignedTx) -> dict:
    """The fields a sweep and a payout transaction record share, from a signed transaction."""
    return {
        "tx_hash": tx.tx_hash,
        "raw_tx": tx.raw_tx,
        "nonce": tx.nonce,
        "from_address": tx.from_address,
        "to_address": tx.to_address,
        "amount": str(tx.amount),
        "token_address": tx.token_address,
        "gas_limit": tx.gas_limit,
        "max_fee_per_gas": str(tx.max_fee_per_gas),
        "max_priority_fee_per_gas": "" if tx.max_priority_fee_per_gas is None else str(tx.max_priority_fee_per_gas),
        "replaces_tx_hash": tx.replaces_tx_hash,
        "l1_fee_reserve": str(tx.l1_fee_reserve),
    }


def tx_from_pb(t: ipb.SweepTransaction) -> RecordedTx:
    return RecordedTx(
        payment_id=t.payment_id,
        chain_id=t.chain_id,
        kind=PB_TO_KIND.get(t.kind, TxKind.SWEEP),
        state=PB_TO_STATE.get(t.state, TxState.SIGNED),
        tx_hash=t.tx_hash.lower(),
        raw_tx=bytes(t.raw_tx),
        nonce=t.nonce,
        from_address=t.from_address,
        to_address=t.to_address,
        amount=_int(t.amount),
        token_address=t.token_address,
        gas_limit=t.gas_limit,
        max_fee_per_gas=_int(t.max_fee_per_gas),
        max_priority_fee_per_gas=_int(t.max_priority_fee_per_gas) if t.max_priority_fee_per_gas else None,
        block_number=t.block_number,
        error=t.error,
        replaces_tx_hash=t.replaces_tx_hash.lower(),
        created_at=optional_datetime(t.created_at),
        updated_at=optional_datetime(t.updated_at),
        merchant_id=t.merchant_id,
        fee=_int(t.fee) if t.fee else None,
        l1_fee_reserve=_int(t.l1_fee_reserve),
        asset=t.asset,
    )


def job_from_pb(j: ipb.SweepJob) -> Job:
    """A sweep job; it keeps only its own transactions (domain/model.py Job: the ledger
    sends no other job's, and one of another job of the same payment is never resumed)."""
    return Job(
        payment_id=j.payment_id,
        merchant_id=j.merchant_id,
        chain_id=j.chain_id,
        asset=j.asset,
        token_address=j.token_address,
        deposit_address=j.deposit_address,
        derivation_path=j.derivation_path,
        amount=_int(j.amount),
        treasury_address=j.treasury_address,
        attempts=j.attempts,
        transactions=[tx_from_pb(t) for t in j.transactions],
    )


PAYOUT_KIND_TO_PB = {
    TxKind.GAS_TOPUP: plpb.PAYOUT_TRANSACTION_KIND_GAS_TOPUP,
    TxKind.PAYOUT: plpb.PAYOUT_TRANSACTION_KIND_PAYOUT,
}
PB_TO_PAYOUT_KIND = {v: k for k, v in PAYOUT_KIND_TO_PB.items()}
PAYOUT_STATE_TO_PB = {s: plpb.PayoutTransactionState.Value(f"PAYOUT_TRANSACTION_STATE_{s.name}") for s in TxState}
PB_TO_PAYOUT_STATE = {v: k for k, v in PAYOUT_STATE_TO_PB.items()}


def payout_tx_from_pb(t: plpb.PayoutTransaction) -> RecordedTx:
    """A payout transaction as the sweeper's journal keeps it (its payment_id holds the payout's id)."""
    return RecordedTx(
        payment_id=t.payout_id,
        chain_id=t.chain_id,
        kind=PB_TO_PAYOUT_KIND.get(t.kind, TxKind.PAYOUT),
        state=PB_TO_PAYOUT_STATE.get(t.state, TxState.SIGNED),
        tx_hash=t.tx_hash.lower(),
        raw_tx=bytes(t.raw_tx),
        nonce=t.nonce,
        from_address=t.from_address,
        to_address=t.to_address,
        amount=_int(t.amount),
        token_address=t.token_address,
        gas_limit=t.gas_limit,
        max_fee_per_gas=_int(t.max_fee_per_gas),
        max_priority_fee_per_gas=_int(t.max_priority_fee_per_gas) if t.max_priority_fee_per_gas else None,
        block_number=t.block_number,
        error=t.error,
        replaces_tx_hash=t.replaces_tx_hash.lower(),
        created_at=optional_datetime(t.created_at),
        updated_at=optional_datetime(t.updated_at),
        fee=_int(t.fee) if t.fee else None,
        l1_fee_reserve=_int(t.l1_fee_reserve),
    )


def payout_job_from_pb(j: plpb.PayoutJob) -> PayoutJob:
    p = j.payout
    return PayoutJob(
        payout_id=p.payout_id,
        merchant_id=p.merchant_id,
        kind="refund" if p.kind == popb.PAYOUT_KIND_REFUND else "payout",
        payment_id=p.payment_id,
        chain_id=p.chain_id,
        asset=p.asset,
        token_address=p.token_address,
        amount=_int(p.amount),
        fee_from_amount=p.fee_from_amount,
        destination=p.destination,
        source_address=p.source_address,
        source_path=j.source_derivation_path,
        from_deposit=p.source == popb.PAYOUT_SOURCE_DEPOSIT_ADDRESS,
        attempts=j.attempts,
        transactions=[payout_tx_from_pb(t) for t in j.transactions],
    )


class LedgerClient:
    """ports.SweepLedger and ports.PayoutLedger over gRPC, plus the operator's calls the
    servicer passes through."""

    def __init__(self, channel: grpc.aio.Channel, token: str, timeout: float = 15.0) -> None:
        self._ledger = ServiceClient(
            igrpc.SweepLedgerServiceStub(channel),
            peer="ledger",
            token=token,
            timeout=timeout,
            token_variable="PAYMESH_SWEEP_LEDGER_TOKEN",
        )
        self._payouts = ServiceClient(
            plgrpc.PayoutLedgerServiceStub(channel),
            peer="ledger",
            token=token,
            timeout=timeout,
            token_variable="PAYMESH_SWEEP_LEDGER_TOKEN",
        )

    async def claim(
        self, chain_id: int, worker_id: str, limit: int, lease_seconds: int, take_over: bool = False
    ) -> list[Job]:
        reply = await self._ledger.call(
            "claiming sweeps",
            "ClaimSweeps",
            ipb.ClaimSweepsRequest(
                chain_id=chain_id,
                limit=limit,
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                jobs_per_asset=True,  # jobs are keyed by (payment, chain, asset) here
                take_over=take_over,
            ),
        )
        return [job_from_pb(j) for j in reply.jobs]

    async def record(self, worker_id: str, job: SweepJobKey, tx: SignedTx) -> RecordedTx:
        reply = await self._ledger.call(
            f"recording transaction {tx.tx_hash}",
            "RecordSweepTransaction",
            ipb.RecordSweepTransactionRequest(
                worker_id=worker_id,
                transaction=ipb.SweepTransaction(
                    payment_id=job.payment_id,
                    chain_id=job.chain_id,
                    asset=job.asset,
                    kind=KIND_TO_PB[tx.kind],
                    state=ipb.SWEEP_TRANSACTION_STATE_SIGNED,
                    **signed_fields(tx),
                ),
            ),
        )
        return tx_from_pb(reply.transaction)

    async def update(
        self, tx_hash: str, state: TxState, block_number: int = 0, error: str = "", fee: int | None = None
    ) -> RecordedTx:
        """`fee`: what the transaction paid per its receipt (None: leave the recorded one)."""
        reply = await self._ledger.call(
            f"updating transaction {tx_hash} to {state.value}",
            "UpdateSweepTransaction",
            ipb.UpdateSweepTransactionRequest(
                tx_hash=tx_hash,
                state=STATE_TO_PB[state],
                block_number=block_number,
                error=error[:2000],
                fee="" if fee is None else str(fee),
            ),
        )
        return tx_from_pb(reply.transaction)

    async def complete(self, job: SweepJobKey, tx_hash: str, amount: int, fee: int) -> str:
        """Mark the sweep job swept: `amount` reached the treasury, the transaction paid
        `fee` (its receipt). Returns the payment's new status name."""
        reply = await self._ledger.call(
            f"completing the sweep of {job}",
            "CompleteSweep",
            ipb.CompleteSweepRequest(
                payment_id=job.payment_id,
                chain_id=job.chain_id,
                asset=job.asset,
                tx_hash=tx_hash,
                amount=str(amount),
                fee=str(fee),
            ),
        )
        return str(reply.payment.status)

    async def release(self, job: SweepJobKey, worker_id: str, error: str, retry_after_seconds: int) -> None:
        await self._ledger.call(
            f"releasing {job}",
            "ReleaseSweep",
            ipb.ReleaseSweepRequest(
                payment_id=job.payment_id,
                chain_id=job.chain_id,
                asset=job.asset,
                worker_id=worker_id,
                error=error[:2000],
                retry_after_seconds=max(1, min(int(retry_after_seconds), 2**32 - 1)),
            ),
        )

    async def list_transactions(
        self,
        *,
        chain_id: int = 0,
        payment_id: str = "",
        merchant_id: str = "",
        asset: str = "",
        states: list[TxState] | None = None,
        page_size: int = 50,
        page_token: str = "",
    ) -> ipb.ListSweepTransactionsResponse:
        return await self._ledger.call(
            "listing sweep transactions",
            "ListSweepTransactions",
            ipb.ListSweepTransactionsRequest(
                chain_id=chain_id,
                payment_id=payment_id,
                merchant_id=merchant_id,
                asset=asset,
                states=[STATE_TO_PB[s] for s in states or []],
                page_size=page_size,
                page_token=page_token,
            ),
        )

    async def unsettled_transactions(self, chain_id: int, limit: int = 500) -> list[RecordedTx]:
        reply = await self.list_transactions(
            chain_id=chain_id, states=[TxState.SIGNED, TxState.BROADCAST], page_size=limit
        )
        return [tx_from_pb(t) for t in reply.transactions]

    async def request_sweep(self, *, payment_id: str = "", merchant_id: str = "") -> int:
        request = (
            ipb.RequestSweepRequest(payment_id=payment_id)
            if payment_id
            else ipb.RequestSweepRequest(merchant_id=merchant_id)
        )
        reply = await self._ledger.call("requesting a sweep", "RequestSweep", request)
        return reply.payments_eligible

    # ------------------------------------------------------------------ ports.PayoutLedger

    async def claim_payouts(
        self, chain_id: int, worker_id: str, limit: int, lease_seconds: int, take_over: bool = False
    ) -> list[PayoutJob]:
        reply = await self._payouts.call(
            "claiming refunds and payouts",
            "ClaimPayouts",
            plpb.ClaimPayoutsRequest(
                chain_id=chain_id,
                limit=limit,
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                take_over=take_over,
            ),
        )
        return [payout_job_from_pb(j) for j in reply.jobs]

    async def record_payout_tx(self, worker_id: str, payout_id: str, tx: SignedTx) -> RecordedTx:
        reply = await self._payouts.call(
            f"recording transaction {tx.tx_hash}",
            "RecordPayoutTransaction",
            plpb.RecordPayoutTransactionRequest(
                worker_id=worker_id,
                transaction=plpb.PayoutTransaction(
                    payout_id=payout_id,
                    kind=PAYOUT_KIND_TO_PB[tx.kind],
                    state=plpb.PAYOUT_TRANSACTION_STATE_SIGNED,
                    **signed_fields(tx),
                ),
            ),
        )
        return payout_tx_from_pb(reply.transaction)

    async def update_payout_tx(
        self, tx_hash: str, state: TxState, block_number: int = 0, error: str = "", fee: int | None = None
    ) -> RecordedTx:
        reply = await self._payouts.call(
            f"updating transaction {tx_hash} to {state.value}",
            "UpdatePayoutTransaction",
            plpb.UpdatePayoutTransactionRequest(
                tx_hash=tx_hash,
                state=PAYOUT_STATE_TO_PB[state],
                block_number=block_number,
                error=error[:2000],
                fee="" if fee is None else str(fee),
            ),
        )
        return payout_tx_from_pb(reply.transaction)

    async def complete_payout(self, payout_id: str, tx_hash: str, amount_sent: int, fee: int) -> None:
        await self._payouts.call(
            f"completing {payout_id}",
            "CompletePayout",
            plpb.CompletePayoutRequest(
                payout_id=payout_id, tx_hash=tx_hash, amount_sent=str(amount_sent), fee=str(fee)
            ),
        )

    async def fail_payout(self, payout_id: str, worker_id: str, reason: str) -> None:
        await self._payouts.call(
            f"failing {payout_id}",
            "FailPayout",
            plpb.FailPayoutRequest(payout_id=payout_id, worker_id=worker_id, reason=reason[:2000]),
        )

    async def release_payout(self, payout_id: str, worker_id: str, error: str, retry_after_seconds: int) -> None:
        await self._payouts.call(
            f"releasing {payout_id}",
            "ReleasePayout",
            plpb.ReleasePayoutRequest(
                payout_id=payout_id,
                worker_id=worker_id,
                error=error[:2000],
                retry_after_seconds=max(1, min(int(retry_after_seconds), 2**32 - 1)),
            ),
        )
