"""gRPC servicers of the ledger: translate protobuf <-> use cases, check credentials.

No business rules here; errors are domain exceptions that the shared
interceptor maps to gRPC statuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
from paymesh.ledger.v1 import address_feed_service_pb2 as fpb
from paymesh.ledger.v1 import address_feed_service_pb2_grpc as fgrpc
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import merchant_directory_service_pb2 as dpb
from paymesh.ledger.v1 import merchant_directory_service_pb2_grpc as dgrpc
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as swpb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as swgrpc

from services.common.errors import InvalidArgument, NotFound
from services.common.grpc_server import bearer_token, check_token
from services.common.money import parse_amount
from services.ledger.address_feed import AddressFeed
from services.ledger.admin import AdminService
from services.ledger.convert import (
    PB_TO_STATUS,
    PB_TO_SWEEP_KIND,
    PB_TO_SWEEP_STATE,
    from_ts,
    merchant_to_pb,
    payment_to_pb,
    sweep_tx_to_pb,
    ts,
)
from services.ledger.domain.status import FINAL_STATUSES
from services.ledger.payments import Authenticator, ListFilter, PaymentsService
from services.ledger.sweeps import NewSweepTx, SweepService

# Subscribes to one merchant's payment events (see consumers.EventSubscription).
EventSubscriber = Callable[[str], Awaitable[Any]]


class PaymentServicer(sgrpc.PaymentServiceServicer):
    def __init__(self, payments: PaymentsService, auth: Authenticator, subscribe: EventSubscriber) -> None:
        self._payments = payments
        self._auth = auth
        self._subscribe = subscribe

    async def _merchant(self, context: grpc.aio.ServicerContext) -> str:
        return await self._auth.merchant_for(bearer_token(context))

    async def CreatePayment(self, request: spb.CreatePaymentRequest, context) -> spb.CreatePaymentResponse:
        merchant_id = await self._merchant(context)
        which = request.WhichOneof("expiry")
        expires_in = request.expires_in.ToTimedelta() if which == "expires_in" else None
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidArgument("expires_in must be positive")
        payment, created = await self._payments.create(
            merchant_id,
            chain_id=request.chain_id,
            asset=request.asset,
            amount=request.amount,
            expires_in=expires_in,
            expires_at=from_ts(request.expires_at) if which == "expires_at" else None,
            merchant_order_id=request.merchant_order_id,
            metadata=dict(request.metadata),
            idempotency_key=request.idempotency_key,
        )
        return spb.CreatePaymentResponse(payment=payment_to_pb(payment), created=created)

    async def GetPayment(self, request: spb.GetPaymentRequest, context) -> spb.GetPaymentResponse:
        merchant_id = await self._merchant(context)
        payment = await self._payments.get(merchant_id, request.payment_id)
        return spb.GetPaymentResponse(payment=payment_to_pb(payment))

    async def ListPayments(self, request: spb.ListPaymentsRequest, context) -> spb.ListPaymentsResponse:
        merchant_id = await self._merchant(context)
        statuses = []
        for i, value in enumerate(request.statuses):  # numbers the enum lacks were refused where requests enter
            if value not in PB_TO_STATUS:
                raise InvalidArgument(
                    f"statuses[{i}] is PAYMENT_STATUS_UNSPECIFIED; name a status, or leave statuses empty for all"
                )
            statuses.append(PB_TO_STATUS[value])
        flt = ListFilter(
            statuses=statuses,
            chain_id=request.chain_id,
            merchant_order_id=request.merchant_order_id,
            created_after=from_ts(request.created_after) if request.HasField("created_after") else None,
            created_before=from_ts(request.created_before) if request.HasField("created_before") else None,
        )
        rows, token = await self._payments.list(merchant_id, flt, request.page_size, request.page_token)
        return spb.ListPaymentsResponse(
            payments=[payment_to_pb(p, with_transfers=False) for p in rows], next_page_token=token
        )

    async def CancelPayment(self, request: spb.CancelPaymentRequest, context) -> spb.CancelPaymentResponse:
        merchant_id = await self._merchant(context)
        payment = await self._payments.cancel(merchant_id, request.payment_id, request.reason)
        return spb.CancelPaymentResponse(payment=payment_to_pb(payment))

    async def WatchPayment(self, request: spb.WatchPaymentRequest, context) -> AsyncIterator[spb.WatchPaymentResponse]:
        api_key = bearer_token(context)
        merchant_id = await self._auth.merchant_for(api_key)
        # Subscribe before reading, so no change between the two is missed.
        subscription = await self._subscribe(merchant_id)
        try:
            payment = await self._payments.get(merchant_id, request.payment_id)
            version = payment.version
            yield spb.WatchPaymentResponse(payment=payment_to_pb(payment))
            if payment.status in FINAL_STATUSES:
                return
            while True:
                # The key is checked again at least once per key-cache period, so a
                # merchant disabled (PERMISSION_DENIED) or a key rotated away
                # (UNAUTHENTICATED) while the stream is open loses it within that time.
                try:
                    event = await asyncio.wait_for(subscription.next(), timeout=max(self._auth.ttl, 0.25))
                except TimeoutError:
                    event = None
                await self._auth.merchant_for(api_key)
                if event is None:
                    continue
                if event.payment.payment_id != request.payment_id or event.payment.version <= version:
                    continue
                version = event.payment.version
                yield spb.WatchPaymentResponse(payment=event.payment)
                if PB_TO_STATUS[event.payment.status] in FINAL_STATUSES:
                    return
        finally:
            await subscription.close()


class MerchantAdminServicer(agrpc.MerchantAdminServiceServicer):
    def __init__(self, admin: AdminService, payments: PaymentsService, admin_token: str) -> None:
        self._admin = admin
        self._payments = payments
        self._token = admin_token

    def _check(self, context) -> None:
        check_token(context, self._token, "admin")

    async def CreateMerchant(self, request: apb.CreateMerchantRequest, context) -> apb.CreateMerchantResponse:
        self._check(context)
        merchant, api_key, secret = await self._admin.create(
            name=request.name,
            xpub=request.xpub,
            derivation_path=request.derivation_path,
            webhook_url=request.webhook_url,
            treasuries=[(t.chain_id, t.address) for t in request.treasuries],
        )
        return apb.CreateMerchantResponse(merchant=merchant_to_pb(merchant), api_key=api_key, webhook_secret=secret)

    async def GetMerchant(self, request, context) -> apb.GetMerchantResponse:
        self._check(context)
        return apb.GetMerchantResponse(merchant=merchant_to_pb(await self._admin.get(request.merchant_id)))

    async def ListMerchants(self, request, context) -> apb.ListMerchantsResponse:
        self._check(context)
        rows, token = await self._admin.list(request.page_size, request.page_token)
        return apb.ListMerchantsResponse(merchants=[merchant_to_pb(m) for m in rows], next_page_token=token)

    async def DisableMerchant(self, request, context) -> apb.DisableMerchantResponse:
        self._check(context)
        return apb.DisableMerchantResponse(
            merchant=merchant_to_pb(await self._admin.set_status(request.merchant_id, False))
        )

    async def EnableMerchant(self, request, context) -> apb.EnableMerchantResponse:
        self._check(context)
        return apb.EnableMerchantResponse(
            merchant=merchant_to_pb(await self._admin.set_status(request.merchant_id, True))
        )

    async def RotateApiKey(self, request, context) -> apb.RotateApiKeyResponse:
        self._check(context)
        merchant, key = await self._admin.rotate_key(request.merchant_id)
        return apb.RotateApiKeyResponse(merchant=merchant_to_pb(merchant), api_key=key)

    async def SetWebhook(self, request, context) -> apb.SetWebhookResponse:
        self._check(context)
        merchant, secret = await self._admin.set_webhook(
            request.merchant_id, request.webhook_url, request.webhook_secret, keep_secret=request.keep_secret
        )
        return apb.SetWebhookResponse(merchant=merchant_to_pb(merchant), webhook_secret=secret)

    async def SetXpub(self, request, context) -> apb.SetXpubResponse:
        self._check(context)
        merchant = await self._admin.set_xpub(request.merchant_id, request.xpub, request.derivation_path)
        return apb.SetXpubResponse(merchant=merchant_to_pb(merchant))

    async def SetTreasury(self, request, context) -> apb.SetTreasuryResponse:
        self._check(context)
        if not request.HasField("treasury"):
            raise InvalidArgument("treasury is required (chain_id and address)")
        merchant = await self._admin.set_treasury(
            request.merchant_id, request.treasury.chain_id, request.treasury.address
        )
        return apb.SetTreasuryResponse(merchant=merchant_to_pb(merchant))

    async def LookupPayment(self, request, context) -> apb.LookupPaymentResponse:
        self._check(context)
        return apb.LookupPaymentResponse(payment=payment_to_pb(await self._payments.get(None, request.payment_id)))


class _ServiceToken:
    """A servicer that only its one caller may use, with its own token."""

    def __init__(self, token: str, what: str, known_chain: Callable[[int], bool]) -> None:
        self._token = token
        self._what = what
        self._known_chain = known_chain

    def _check(self, context) -> None:
        check_token(context, self._token, self._what)

    def _chain(self, chain_id: int) -> None:
        if not self._known_chain(chain_id):
            raise NotFound(f"chain {chain_id} is not configured")


class AddressFeedServicer(fgrpc.AddressFeedServiceServicer, _ServiceToken):
    """The listener's view: the deposit addresses to watch (PAYMESH_ADDRESS_FEED_TOKEN)."""

    def __init__(self, feed: AddressFeed, token: str, known_chain: Callable[[int], bool]) -> None:
        _ServiceToken.__init__(self, token, "address feed", known_chain)
        self._feed = feed

    async def WatchAddresses(
        self, request: fpb.WatchAddressesRequest, context
    ) -> AsyncIterator[fpb.WatchAddressesResponse]:
        self._check(context)
        self._chain(request.chain_id)
        async for rows, complete in self._feed.stream(request.chain_id):
            yield fpb.WatchAddressesResponse(
                addresses=[
                    fpb.WatchedAddress(
                        chain_id=r.chain_id,
                        address=r.address,
                        payment_id=r.payment_id,
                        from_block=r.from_block,
                        created_at=ts(r.created_at),
                    )
                    for r in rows
                ],
                snapshot_complete=complete,
            )


class SweepLedgerServicer(swgrpc.SweepLedgerServiceServicer, _ServiceToken):
    """The sweeper's book: claims, write-ahead records, completion (PAYMESH_SWEEP_LEDGER_TOKEN)."""

    def __init__(self, sweeps: SweepService, token: str, known_chain: Callable[[int], bool]) -> None:
        _ServiceToken.__init__(self, token, "sweep ledger", known_chain)
        self._sweeps = sweeps

    async def ClaimSweeps(self, request: swpb.ClaimSweepsRequest, context) -> swpb.ClaimSweepsResponse:
        self._check(context)
        self._chain(request.chain_id)
        jobs = await self._sweeps.claim(request.chain_id, request.worker_id, request.limit, request.lease_seconds)
        return swpb.ClaimSweepsResponse(
            jobs=[
                swpb.SweepJob(
                    payment_id=j.payment.id,
                    merchant_id=j.payment.merchant_id,
                    chain_id=j.payment.chain_id,
                    asset=j.payment.asset,
                    token_address=j.payment.token_address or "",
                    deposit_address=j.payment.deposit_address,
                    derivation_path=j.payment.derivation_path,
                    amount=str(j.payment.amount_confirmed - j.payment.amount_accounted),
                    treasury_address=j.treasury_address,
                    lease_expires_at=ts(j.lease_until),
                    transactions=[sweep_tx_to_pb(t) for t in j.transactions],
                    attempts=j.attempts,
                )
                for j in jobs
            ]
        )

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
        )
        return swpb.CompleteSweepResponse(payment=payment_to_pb(payment))

    async def ReleaseSweep(self, request, context) -> swpb.ReleaseSweepResponse:
        self._check(context)
        await self._sweeps.release(request.payment_id, request.worker_id, request.error, request.retry_after_seconds)
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
        )
        return swpb.ListSweepTransactionsResponse(transactions=[sweep_tx_to_pb(t) for t in rows], next_page_token=token)

    async def RequestSweep(self, request, context) -> swpb.RequestSweepResponse:
        self._check(context)
        count = await self._sweeps.request(payment_id=request.payment_id, merchant_id=request.merchant_id)
        return swpb.RequestSweepResponse(payments_eligible=count)


class MerchantDirectoryServicer(dgrpc.MerchantDirectoryServiceServicer, _ServiceToken):
    """The notifier's view of merchants: webhook targets, API keys (PAYMESH_MERCHANT_DIRECTORY_TOKEN)."""

    def __init__(self, admin: AdminService, auth: Authenticator, token: str) -> None:
        _ServiceToken.__init__(self, token, "merchant directory", lambda _: True)
        self._admin = admin
        self._auth = auth

    async def GetWebhookTarget(self, request, context) -> dpb.GetWebhookTargetResponse:
        self._check(context)
        merchant = await self._admin.get(request.merchant_id)
        return dpb.GetWebhookTargetResponse(
            webhook_url=merchant.webhook_url,
            webhook_secret=merchant.webhook_secret,
            merchant_active=merchant.status == "active",
        )

    async def AuthenticateApiKey(self, request, context) -> dpb.AuthenticateApiKeyResponse:
        self._check(context)
        merchant_id, active = await self._auth.lookup(request.api_key)
        return dpb.AuthenticateApiKeyResponse(merchant_id=merchant_id, active=active)
