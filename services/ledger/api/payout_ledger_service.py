"""PayoutLedgerService, the sweeper's book of refunds and payouts
(PAYMESH_SWEEP_LEDGER_TOKEN): leases, write-ahead records of signed transactions,
their progress, completion, failure, release (payouts.py)."""

from __future__ import annotations

from collections.abc import Callable

from paymesh.ledger.v1 import payout_ledger_service_pb2 as plpb
from paymesh.ledger.v1 import payout_ledger_service_pb2_grpc as plgrpc

from services.common.errors import InvalidArgument
from services.common.money import parse_amount
from services.ledger.api.caller_check import CallerCheck
from services.ledger.api.convert import (
    PAYOUT_TX_KIND_FROM_PB,
    PAYOUT_TX_STATE_FROM_PB,
    payout_to_pb,
    payout_tx_to_pb,
    ts,
)
from services.ledger.payouts import NewPayoutTx, PayoutsService


class PayoutLedgerServicer(plgrpc.PayoutLedgerServiceServicer, CallerCheck):
    def __init__(self, payouts: PayoutsService, token: str, known_chain: Callable[[int], bool]) -> None:
        CallerCheck.__init__(self, token, "sweep ledger", known_chain)
        self._payouts = payouts

    async def ClaimPayouts(self, request: plpb.ClaimPayoutsRequest, context) -> plpb.ClaimPayoutsResponse:
        self._check(context)
        self._chain(request.chain_id)
        jobs = await self._payouts.claim(
            request.chain_id, request.worker_id, request.limit, request.lease_seconds, take_over=request.take_over
        )
        return plpb.ClaimPayoutsResponse(
            jobs=[
                plpb.PayoutJob(
                    payout=payout_to_pb(j.payout),
                    source_derivation_path=j.payout.source_path,
                    transactions=[payout_tx_to_pb(t) for t in j.transactions],
                    attempts=j.payout.attempts,
                    lease_expires_at=ts(j.payout.lease_until),
                )
                for j in jobs
            ]
        )

    async def RecordPayoutTransaction(
        self, request: plpb.RecordPayoutTransactionRequest, context
    ) -> plpb.RecordPayoutTransactionResponse:
        self._check(context)
        t = request.transaction
        if t.kind not in PAYOUT_TX_KIND_FROM_PB:
            raise InvalidArgument("transaction.kind must be PAYOUT or GAS_TOPUP")
        stored = await self._payouts.record(
            request.worker_id,
            NewPayoutTx(
                payout_id=t.payout_id,
                kind=PAYOUT_TX_KIND_FROM_PB[t.kind],
                tx_hash=t.tx_hash,
                raw_tx=t.raw_tx,
                nonce=t.nonce,
                from_address=t.from_address,
                to_address=t.to_address,
                amount=parse_amount(t.amount, field="transaction.amount", allow_zero=True),
                token_address=t.token_address,
                gas_limit=t.gas_limit,
                max_fee_per_gas=parse_amount(t.max_fee_per_gas, field="transaction.max_fee_per_gas", allow_zero=True),
                max_priority_fee_per_gas=parse_amount(
                    t.max_priority_fee_per_gas, field="transaction.max_priority_fee_per_gas", allow_zero=True
                )
                if t.max_priority_fee_per_gas
                else None,
                replaces_tx_hash=t.replaces_tx_hash,
                l1_fee_reserve=parse_amount(t.l1_fee_reserve, field="transaction.l1_fee_reserve", allow_zero=True)
                if t.l1_fee_reserve
                else 0,
            ),
        )
        return plpb.RecordPayoutTransactionResponse(transaction=payout_tx_to_pb(stored))

    async def UpdatePayoutTransaction(
        self, request: plpb.UpdatePayoutTransactionRequest, context
    ) -> plpb.UpdatePayoutTransactionResponse:
        self._check(context)
        if request.state not in PAYOUT_TX_STATE_FROM_PB:
            raise InvalidArgument("state must be BROADCAST, MINED, CONFIRMED, FAILED or REPLACED")
        stored = await self._payouts.update(
            request.tx_hash,
            PAYOUT_TX_STATE_FROM_PB[request.state],
            request.block_number,
            request.error,
            parse_amount(request.fee, field="fee", allow_zero=True) if request.fee else None,
        )
        return plpb.UpdatePayoutTransactionResponse(transaction=payout_tx_to_pb(stored))

    async def CompletePayout(self, request: plpb.CompletePayoutRequest, context) -> plpb.CompletePayoutResponse:
        self._check(context)
        payout = await self._payouts.complete(
            request.payout_id,
            request.tx_hash,
            parse_amount(request.amount_sent, field="amount_sent", allow_zero=True),
            parse_amount(request.fee, field="fee", allow_zero=True),
        )
        return plpb.CompletePayoutResponse(payout=payout_to_pb(payout))

    async def FailPayout(self, request: plpb.FailPayoutRequest, context) -> plpb.FailPayoutResponse:
        self._check(context)
        payout = await self._payouts.fail(request.payout_id, request.worker_id, request.reason)
        return plpb.FailPayoutResponse(payout=payout_to_pb(payout))

    async def ReleasePayout(self, request: plpb.ReleasePayoutRequest, context) -> plpb.ReleasePayoutResponse:
        self._check(context)
        await self._payouts.release(request.payout_id, request.worker_id, request.error, request.retry_after_seconds)
        return plpb.ReleasePayoutResponse()
