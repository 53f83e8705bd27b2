"""SweepLedgerService, the sweeper's book (PAYMESH_SWEEP_LEDGER_TOKEN): sweep leases,
write-ahead records of signed transactions, their progress, completion (sweeps.py)."""

from __future__ import annotations

from collections.abc import Callable

from paymesh.ledger.v1 import sweep_ledger_service_pb2 as swpb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as swgrpc

from services.common.errors import InvalidArgument
from services.common.money import parse_amount
from services.ledger.api.caller_check import CallerCheck
from services.ledger.api.convert import (
    PB_TO_SWEEP_KIND,
    PB_TO_SWEEP_STATE,
    payment_to_pb,
    sweep_job_to_pb,
    sweep_tx_to_pb,
)
from services.ledger.sweeps import NewSweepTx, SweepService


class SweepLedgerServicer(swgrpc.SweepLedgerServiceServicer, CallerCheck):
    """The sweeper's book: claims, write-ahead records, completion (PAYMESH_SWEEP_LEDGER_TOKEN)."""

    def __init__(self, sweeps: SweepService, token: str, known_chain: Callable[[int], bool]) -> None:
        CallerCheck.__init__(self, token, "sweep ledger", known_chain)
        self._sweeps = sweeps

    async def ClaimSweeps(self, request: swpb.ClaimSweepsRequest, context) -> swpb.ClaimSweepsResponse:
        self._check(context)
        self._chain(request.chain_id)
        jobs = await self._sweeps.claim(
            request.chain_id,
            request.worker_id,
            request.limit,
            request.lease_seconds,
            jobs_per_asset=request.jobs_per_asset,
            take_over=request.take_over,
        )
        return swpb.ClaimSweepsResponse(jobs=[sweep_job_to_pb(j) for j in jobs])

    async def RecordSweepTransaction(
        self, request: swpb.RecordSweepTransactionRequest, context
    ) -> swpb.RecordSweepTransactionResponse:
        self._check(context)
        t = request.transaction
        if t.kind not in PB_TO_SWEEP_KIND:
            raise InvalidArgument("transaction.kind must be GAS_TOPUP or SWEEP")
        stored = await self._sweeps.record(
            request.worker_id,
            NewSweepTx(
                payment_id=t.payment_id,
                chain_id=t.chain_id,
                kind=PB_TO_SWEEP_KIND[t.kind],
                tx_hash=t.tx_hash,
                raw_tx=t.raw_tx,
                nonce=t.nonce,
                from_address=t.from_address,
                to_address=t.to_address,
                amount=parse_amount(t.amount, field="transaction.amount", allow_zero=True),
                token_address=t.token_address or None,
                gas_limit=t.gas_limit,
                max_fee_per_gas=parse_amount(t.max_fee_per_gas, field="transaction.max_fee_per_gas", allow_zero=True),
                max_priority_fee_per_gas=(
                    parse_amount(
                        t.max_priority_fee_per_gas, field="transaction.max_priority_fee_per_gas", allow_zero=True
                    )
                    if t.max_priority_fee_per_gas
                    else None
                ),
                replaces_tx_hash=t.replaces_tx_hash,
                l1_fee_reserve=(
                    parse_amount(t.l1_fee_reserve, field="transaction.l1_fee_reserve", allow_zero=True)
                    if t.l1_fee_reserve
                    else 0
                ),
                asset=t.asset,
            ),
        )
        return swpb.RecordSweepTransactionResponse(transaction=sweep_tx_to_pb(stored))

    async def UpdateSweepTransaction(self, request, context) -> swpb.UpdateSweepTransactionResponse:
        self._check(context)
        state = PB_TO_SWEEP_STATE.get(request.state, "")
        fee = parse_amount(request.fee, field="fee", allow_zero=True) if request.fee else None
        stored = await self._sweeps.update(request.tx_hash, state, request.block_number, request.error, fee)
        return swpb.UpdateSweepTransactionResponse(transaction=sweep_tx_to_pb(stored))

    async def CompleteSweep(self, request, context) -> swpb.CompleteSweepResponse:
        self._check(context)
        payment = await self._sweeps.complete(
            request.payment_id,
            request.tx_hash,
            parse_amount(request.amount, field="amount"),
            parse_amount(request.fee, field="fee", allow_zero=True),
            chain_id=request.chain_id,
            asset=request.asset,
        )
        return swpb.CompleteSweepResponse(payment=payment_to_pb(payment))

    async def ReleaseSweep(self, request, context) -> swpb.ReleaseSweepResponse:
        self._check(context)
        await self._sweeps.release(
            request.payment_id,
            request.worker_id,
            request.error,
            request.retry_after_seconds,
            chain_id=request.chain_id,
            asset=request.asset,
        )
        return swpb.ReleaseSweepResponse()

    async def ListSweepTransactions(self, request, context) -> swpb.ListSweepTransactionsResponse:
        self._check(context)
        states = []
        for i, value in enumerate(request.states):  # numbers the enum lacks were refused where requests enter
            if value not in PB_TO_SWEEP_STATE:
                raise InvalidArgument(
                    f"states[{i}] is SWEEP_TRANSACTION_STATE_UNSPECIFIED; name a state, or leave states empty for all"
                )
            states.append(PB_TO_SWEEP_STATE[value])
        rows, token = await self._sweeps.list(
            chain_id=request.chain_id,
            payment_id=request.payment_id,
            merchant_id=request.merchant_id,
            states=states,
            size=request.page_size,
            token=request.page_token,
            asset=request.asset,
        )
        return swpb.ListSweepTransactionsResponse(transactions=[sweep_tx_to_pb(t) for t in rows], next_page_token=token)

    async def RequestSweep(self, request, context) -> swpb.RequestSweepResponse:
        self._check(context)
        count = await self._sweeps.request(payment_id=request.payment_id, merchant_id=request.merchant_id)
        return swpb.RequestSweepResponse(payments_eligible=count)
