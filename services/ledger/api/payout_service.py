"""PayoutService, the merchants' refunds and payouts (an API key per merchant):
create, read, list, cancel, and the payout wallet. Checks the key, converts, calls
payouts.py, converts back."""

from __future__ import annotations

import grpc
from paymesh.ledger.v1 import payout_service_pb2 as popb
from paymesh.ledger.v1 import payout_service_pb2_grpc as pogrpc

from services.common.errors import InvalidArgument
from services.common.grpc_server import bearer_token
from services.ledger.api.convert import PAYOUT_STATE_FROM_PB, payout_to_pb
from services.ledger.authentication import Authenticator, MerchantAccess
from services.ledger.domain.payouts import PayoutKind, RefundMode
from services.ledger.payouts import BatchItem, PayoutsService

REFUND_MODES = {
    popb.REFUND_AMOUNT_UNSPECIFIED: RefundMode.AMOUNT,
    popb.REFUND_AMOUNT_ALL_RECEIVED: RefundMode.ALL_RECEIVED,
    popb.REFUND_AMOUNT_EXCESS: RefundMode.EXCESS,
}


class PayoutServicer(pogrpc.PayoutServiceServicer):
    def __init__(self, payouts: PayoutsService, auth: Authenticator) -> None:
        self._payouts = payouts
        self._auth = auth

    async def _merchant(self, context: grpc.aio.ServicerContext) -> str:
        return await self._auth.merchant_for(bearer_token(context))

    async def _active(self, context: grpc.aio.ServicerContext) -> MerchantAccess:
        return await self._auth.active_merchant(bearer_token(context))

    async def CreateRefund(self, request: popb.CreateRefundRequest, context) -> popb.CreateRefundResponse:
        caller = await self._active(context)
        if request.mode not in REFUND_MODES:
            raise InvalidArgument(f"mode {request.mode} is not a RefundAmount")
        refund, created = await self._payouts.create_refund(
            caller.merchant_id,
            payment_id=request.payment_id,
            mode=REFUND_MODES[request.mode],
            amount=request.amount,
            chain_id=request.chain_id,
            asset=request.asset,
            destination=request.destination,
            idempotency_key=request.idempotency_key,
            reason=request.reason,
            value=(request.value.currency, request.value.amount) if request.HasField("value") else None,
            claim_link=request.claim_link,
            key_id=caller.key_id,
        )
        return popb.CreateRefundResponse(refund=payout_to_pb(refund), created=created)

    async def GetRefund(self, request: popb.GetRefundRequest, context) -> popb.GetRefundResponse:
        found = await self._payouts.get(await self._merchant(context), request.refund_id, PayoutKind.REFUND)
        return popb.GetRefundResponse(refund=payout_to_pb(found))

    async def ListRefunds(self, request: popb.ListRefundsRequest, context) -> popb.ListRefundsResponse:
        rows, token = await self._payouts.list(
            await self._merchant(context),
            PayoutKind.REFUND,
            payment_id=request.payment_id,
            size=request.page_size,
            token=request.page_token,
        )
        return popb.ListRefundsResponse(refunds=[payout_to_pb(r) for r in rows], next_page_token=token)

    async def CreatePayout(self, request: popb.CreatePayoutRequest, context) -> popb.CreatePayoutResponse:
        caller = await self._active(context)
        payout, created = await self._payouts.create_payout(
            caller.merchant_id,
            chain_id=request.chain_id,
            asset=request.asset,
            amount=request.amount,
            destination=request.destination,
            idempotency_key=request.idempotency_key,
            memo=request.memo,
            key_id=caller.key_id,
        )
        return popb.CreatePayoutResponse(payout=payout_to_pb(payout), created=created)

    async def CreatePayoutBatch(
        self, request: popb.CreatePayoutBatchRequest, context
    ) -> popb.CreatePayoutBatchResponse:
        caller = await self._active(context)
        payouts, created = await self._payouts.create_batch(
            caller.merchant_id,
            chain_id=request.chain_id,
            asset=request.asset,
            items=[BatchItem(i.amount, i.destination, i.memo) for i in request.items],
            idempotency_key=request.idempotency_key,
            key_id=caller.key_id,
        )
        return popb.CreatePayoutBatchResponse(
            batch_id=payouts[0].batch_id, payouts=[payout_to_pb(p) for p in payouts], created=created
        )

    async def GetPayout(self, request: popb.GetPayoutRequest, context) -> popb.GetPayoutResponse:
        found = await self._payouts.get(await self._merchant(context), request.payout_id, PayoutKind.PAYOUT)
        return popb.GetPayoutResponse(payout=payout_to_pb(found))

    async def ListPayouts(self, request: popb.ListPayoutsRequest, context) -> popb.ListPayoutsResponse:
        states = []
        for s in request.states:
            if s not in PAYOUT_STATE_FROM_PB:
                raise InvalidArgument(f"states: {s} is not a PayoutState")
            states.append(PAYOUT_STATE_FROM_PB[s].value)
        rows, token = await self._payouts.list(
            await self._merchant(context),
            PayoutKind.PAYOUT,
            batch_id=request.batch_id,
            states=states,
            size=request.page_size,
            token=request.page_token,
        )
        return popb.ListPayoutsResponse(payouts=[payout_to_pb(p) for p in rows], next_page_token=token)

    async def CancelPayout(self, request: popb.CancelPayoutRequest, context) -> popb.CancelPayoutResponse:
        payout = await self._payouts.cancel(await self._merchant(context), request.payout_id)
        return popb.CancelPayoutResponse(payout=payout_to_pb(payout))

    async def GetPayoutWallet(self, request: popb.GetPayoutWalletRequest, context) -> popb.GetPayoutWalletResponse:
        view = await self._payouts.wallet(await self._merchant(context), request.chain_id)
        return popb.GetPayoutWalletResponse(
            address=view.address,
            derivation_path=view.derivation_path,
            chain_id=view.chain_id,
            balances=[
                popb.AssetBalance(asset=a, token_address=t, balance=str(b), reserved=str(r))
                for a, t, b, r in view.balances
            ],
            balances_error=view.balances_error,
        )

    async def ApprovePayout(
        self, request: popb.PayoutServiceApprovePayoutRequest, context
    ) -> popb.PayoutServiceApprovePayoutResponse:
        caller = await self._active(context)
        payout = await self._payouts.approve(request.payout_id, merchant_id=caller.merchant_id, key_id=caller.key_id)
        return popb.PayoutServiceApprovePayoutResponse(payout=payout_to_pb(payout))
