"""paymesh-client: a small typed wrapper over the generated stubs for merchants.

    from paymesh_client import PaymeshClient

    async with PaymeshClient("gateway.example:50051", api_key="pmk_...") as client:
        payment = await client.create_payment(chain_id=1, asset="USDC", amount=25_000_000)
        async for update in client.watch_payment(payment.payment_id):
            print(update.status)

- the API key goes in `authorization: Bearer ...` on every call;
- every CreatePayment carries an idempotency key (generated if you give none),
  so the built-in retries on UNAVAILABLE / DEADLINE_EXCEEDED never create twice;
- amounts are Python ints in base units (never floats), sent as decimal strings;
  fiat prices are Decimals or decimal strings (`create_priced_payment`);
- refunds and payouts (`create_refund`, `create_payout`, `create_payout_batch`, ...)
  carry an idempotency key too: each is sent once, however often the call is retried;
- webhook endpoints (`create_webhook_endpoint`, `roll_webhook_secret`, ...), API keys
  and the audit log, with delayed treasury / xpub changes (`config_changes`,
  `cancel_config_change`). Calls that would create twice if repeated (a new key, a new
  endpoint, a secret roll) are never retried: on UNAVAILABLE, list before trying again.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from paymesh.ledger.v1 import api_key_service_pb2 as kpb
from paymesh.ledger.v1 import api_key_service_pb2_grpc as kgrpc
from paymesh.ledger.v1 import audit_service_pb2 as aupb
from paymesh.ledger.v1 import audit_service_pb2_grpc as augrpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc
from paymesh.ledger.v1 import payout_pb2 as popb
from paymesh.ledger.v1 import payout_service_pb2 as pspb
from paymesh.ledger.v1 import payout_service_pb2_grpc as psgrpc
from paymesh.ledger.v1 import webhook_endpoint_service_pb2 as wepb
from paymesh.ledger.v1 import webhook_endpoint_service_pb2_grpc as wegrpc

__all__ = ["PaymeshClient", "PaymentStatus", "Payment", "Payout", "PayoutState", "RETRYABLE"]

Payment = pb.Payment
PaymentStatus = pb.PaymentStatus
Payout = popb.Payout
PayoutState = popb.PayoutState
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
T = TypeVar("T")


class PaymeshClient:
    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 10.0,
        attempts: int = 4,
        backoff: float = 0.2,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        if secure or credentials is not None:
            self._channel = grpc.aio.secure_channel(target, credentials or grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.aio.insecure_channel(target)
        self._stub = sgrpc.PaymentServiceStub(self._channel)
        self._payouts = psgrpc.PayoutServiceStub(self._channel)
        self._keys = kgrpc.ApiKeyServiceStub(self._channel)
        self._audit = augrpc.AuditServiceStub(self._channel)
        self._endpoints = wegrpc.WebhookEndpointServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff

    async def __aenter__(self) -> PaymeshClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, rpc: Callable[..., Awaitable[T]], request: object, *, retry: bool = True) -> T:
        """Retry transient failures with jittered exponential backoff; the
        requests retried are all idempotent (reads, keyed creates, cancels);
        `retry=False` for the others (a new key, a new endpoint, a secret roll)."""
        for attempt in range(self._attempts if retry else 1):
            try:
                return await rpc(request, metadata=self._metadata, timeout=self._timeout)
            except grpc.aio.AioRpcError as err:
                if err.code() not in RETRYABLE or attempt == self._attempts - 1:
                    raise
                await asyncio.sleep(self._backoff * 2**attempt * (0.5 + random.random()))
        raise AssertionError("unreachable")

    async def create_payment(
        self,
        *,
        chain_id: int,
        asset: str,
        amount: int,
        expires_in: timedelta | None = None,
        merchant_order_id: str = "",
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> pb.Payment:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("amount must be an int of base units (wei, token units), never a float")
        request = spb.CreatePaymentRequest(
            chain_id=chain_id,
            asset=asset,
            amount=str(amount),
            merchant_order_id=merchant_order_id,
            metadata=metadata or {},
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        if expires_in is not None:
            request.expires_in.CopyFrom(Duration(seconds=int(expires_in.total_seconds())))
        return (await self._call(self._stub.CreatePayment, request)).payment

    async def create_priced_payment(
        self,
        *,
        currency: str,
        price: Decimal | str,
        options: Sequence[tuple[int, str]] = (),
        accept_all_assets: bool = False,
        accept_chain_ids: Sequence[int] = (),
        expires_in: timedelta | None = None,
        merchant_order_id: str = "",
        description: str = "",
        return_url: str = "",
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> pb.Payment:
        """A payment priced in a fiat currency (`price` an exact Decimal or a decimal
        string such as "19.99", never a float), payable in any of `options` (chain id,
        asset symbol) or in every configured asset with a rate (`accept_all_assets`).
        The reply's `options` give each one's amount due; `checkout_url` is the
        customer's page."""
        if isinstance(price, float) or not isinstance(price, (Decimal, str)):
            raise TypeError("price must be a Decimal or a decimal string such as '19.99', never a float")
        request = spb.CreatePaymentRequest(
            price=pb.Money(currency=currency, amount=format(price, "f") if isinstance(price, Decimal) else price),
            options=[spb.AcceptedAsset(chain_id=c, asset=a) for c, a in options],
            accept_all_assets=accept_all_assets,
            accept_chain_ids=list(accept_chain_ids),
            merchant_order_id=merchant_order_id,
            description=description,
            return_url=return_url,
            metadata=metadata or {},
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        if expires_in is not None:
            request.expires_in.CopyFrom(Duration(seconds=int(expires_in.total_seconds())))
        return (await self._call(self._stub.CreatePayment, request)).payment

    async def get_payment(self, payment_id: str) -> pb.Payment:
        return (await self._call(self._stub.GetPayment, spb.GetPaymentRequest(payment_id=payment_id))).payment

    async def list_payments(
        self, *, statuses: Sequence[int] = (), chain_id: int = 0, merchant_order_id: str = "", page_size: int = 100
    ) -> AsyncIterator[pb.Payment]:
        """Every matching payment, newest first, following page tokens."""
        token = ""
        while True:
            reply = await self._call(
                self._stub.ListPayments,
                spb.ListPaymentsRequest(
                    statuses=list(statuses),
                    chain_id=chain_id,
                    merchant_order_id=merchant_order_id,
                    page_size=page_size,
                    page_token=token,
                ),
            )
            for payment in reply.payments:
                yield payment
            token = reply.next_page_token
            if not token:
                return

    async def cancel_payment(self, payment_id: str, reason: str = "") -> pb.Payment:
        return (
            await self._call(self._stub.CancelPayment, spb.CancelPaymentRequest(payment_id=payment_id, reason=reason))
        ).payment

    async def watch_payment(self, payment_id: str) -> AsyncIterator[pb.Payment]:
        """The payment now, then after every change until a final status."""
        call = self._stub.WatchPayment(spb.WatchPaymentRequest(payment_id=payment_id), metadata=self._metadata)
        try:
            async for reply in call:
                yield reply.payment
        finally:
            call.cancel()

    # ------------------------------------------------------------------ refunds and payouts

    @staticmethod
    def _units(value: int, what: str) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{what} must be an int of base units (wei, token units), never a float")
        return str(value)

    async def create_refund(
        self,
        payment_id: str,
        *,
        amount: int | None = None,
        excess: bool = False,
        all_received: bool = False,
        destination: str = "",
        claim_link: bool = False,
        reason: str = "",
        chain_id: int = 0,
        asset: str = "",
        idempotency_key: str | None = None,
    ) -> popb.Payout:
        """Give money back for a payment: `amount` base units, or `excess=True` (an
        overpayment's excess), or `all_received=True`; to `destination`, or with
        `claim_link=True` (the customer enters the address on `claim_url`)."""
        if sum((amount is not None, excess, all_received)) != 1:
            raise ValueError("give exactly one of amount, excess=True or all_received=True")
        request = pspb.CreateRefundRequest(
            payment_id=payment_id,
            amount=self._units(amount, "amount") if amount is not None else "",
            mode=pspb.REFUND_AMOUNT_EXCESS
            if excess
            else pspb.REFUND_AMOUNT_ALL_RECEIVED
            if all_received
            else pspb.REFUND_AMOUNT_UNSPECIFIED,
            destination=destination,
            claim_link=claim_link,
            reason=reason,
            chain_id=chain_id,
            asset=asset,
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        return (await self._call(self._payouts.CreateRefund, request)).refund

    async def get_refund(self, refund_id: str) -> popb.Payout:
        return (await self._call(self._payouts.GetRefund, pspb.GetRefundRequest(refund_id=refund_id))).refund

    async def create_payout(
        self,
        *,
        chain_id: int,
        asset: str,
        amount: int,
        destination: str,
        memo: str = "",
        idempotency_key: str | None = None,
    ) -> popb.Payout:
        """Send `amount` base units from the merchant's payout wallet to `destination`."""
        request = pspb.CreatePayoutRequest(
            chain_id=chain_id,
            asset=asset,
            amount=self._units(amount, "amount"),
            destination=destination,
            memo=memo,
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        return (await self._call(self._payouts.CreatePayout, request)).payout

    async def create_payout_batch(
        self,
        *,
        chain_id: int,
        asset: str,
        items: Sequence[tuple[str, int]],
        idempotency_key: str | None = None,
    ) -> list[popb.Payout]:
        """Payouts to many destinations at once, all or none: `items` are (destination, amount)."""
        request = pspb.CreatePayoutBatchRequest(
            chain_id=chain_id,
            asset=asset,
            items=[pspb.PayoutItem(destination=d, amount=self._units(a, "amount")) for d, a in items],
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        return list((await self._call(self._payouts.CreatePayoutBatch, request)).payouts)

    async def get_payout(self, payout_id: str) -> popb.Payout:
        return (await self._call(self._payouts.GetPayout, pspb.GetPayoutRequest(payout_id=payout_id))).payout

    async def cancel_payout(self, payout_id: str) -> popb.Payout:
        """Cancel a refund or payout not yet signed."""
        return (await self._call(self._payouts.CancelPayout, pspb.CancelPayoutRequest(payout_id=payout_id))).payout

    async def payout_wallet(self, chain_id: int) -> pspb.GetPayoutWalletResponse:
        """The merchant's payout wallet on a chain: its address and what it holds."""
        return await self._call(self._payouts.GetPayoutWallet, pspb.GetPayoutWalletRequest(chain_id=chain_id))

    # ------------------------------------------------------------------ API keys and the audit log

    async def create_api_key(
        self, name: str, scopes: Sequence[str], *, expires_at: datetime | None = None
    ) -> tuple[kpb.ApiKey, str]:
        """A new key of this merchant (this key needs keys:manage and every scope it
        grants): (the key, its secret, shown only now). `scopes` by name, such as
        "payments:read", "payouts:write"."""
        names = {"API_KEY_SCOPE_" + n.replace(":", "_").upper(): n for n in scopes}
        request = kpb.CreateApiKeyRequest(name=name, scopes=[kpb.ApiKeyScope.Value(n) for n in names])
        if expires_at is not None:
            stamp = Timestamp()
            stamp.FromDatetime(expires_at)
            request.expires_at.CopyFrom(stamp)
        reply = await self._call(self._keys.CreateApiKey, request, retry=False)
        return reply.api_key, reply.secret

    async def list_api_keys(self) -> list[kpb.ApiKey]:
        return list((await self._call(self._keys.ListApiKeys, kpb.ListApiKeysRequest())).api_keys)

    async def revoke_api_key(self, key_id: str, *, at: datetime | None = None) -> kpb.ApiKey:
        """Revoke now, or at `at` (the overlap of a rotation, at most 30 days ahead)."""
        request = kpb.RevokeApiKeyRequest(key_id=key_id)
        if at is not None:
            stamp = Timestamp()
            stamp.FromDatetime(at)
            request.revoke_at.CopyFrom(stamp)
        return (await self._call(self._keys.RevokeApiKey, request)).api_key

    async def audit_entries(self, page_size: int = 100) -> AsyncIterator[aupb.AuditEntry]:
        """This merchant's audit log, newest first, every page."""
        token = ""
        while True:
            reply = await self._call(
                self._audit.ListAuditEntries, aupb.ListAuditEntriesRequest(page_size=page_size, page_token=token)
            )
            for entry in reply.entries:
                yield entry
            token = reply.next_page_token
            if not token:
                return

    async def config_changes(self, pending_only: bool = False) -> list[aupb.ConfigChange]:
        """This merchant's delayed treasury / xpub changes, newest first."""
        state = aupb.CONFIG_CHANGE_STATE_PENDING if pending_only else aupb.CONFIG_CHANGE_STATE_UNSPECIFIED
        reply = await self._call(self._audit.ListConfigChanges, aupb.ListConfigChangesRequest(state=state))
        return list(reply.changes)

    async def cancel_config_change(self, change_id: str) -> aupb.ConfigChange:
        """Stop a treasury or xpub change before it takes effect (needs keys:manage)."""
        reply = await self._call(self._audit.CancelConfigChange, aupb.CancelConfigChangeRequest(change_id=change_id))
        return reply.change

    # ------------------------------------------------------------------ webhook endpoints

    async def create_webhook_endpoint(
        self, url: str, event_types: Sequence[str] = (), *, description: str = "", enabled: bool = True
    ) -> tuple[wepb.WebhookEndpoint, str]:
        """A new endpoint (this key needs webhooks:manage): (the endpoint, its signing
        secret, shown only now). `event_types` such as "payment.confirmed", "refund.*";
        empty: every type."""
        request = wepb.CreateWebhookEndpointRequest(
            url=url, event_types=list(event_types), description=description, disabled=not enabled
        )
        reply = await self._call(self._endpoints.CreateWebhookEndpoint, request, retry=False)
        return reply.endpoint, reply.secret

    async def list_webhook_endpoints(self) -> list[wepb.WebhookEndpoint]:
        reply = await self._call(self._endpoints.ListWebhookEndpoints, wepb.ListWebhookEndpointsRequest())
        return list(reply.endpoints)

    async def update_webhook_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        description: str | None = None,
        event_types: Sequence[str] | None = None,
        enabled: bool | None = None,
    ) -> wepb.WebhookEndpoint:
        """Change the fields given; the others keep their values."""
        request = wepb.UpdateWebhookEndpointRequest(endpoint_id=endpoint_id)
        if url is not None:
            request.url = url
        if description is not None:
            request.description = description
        if event_types is not None:
            request.event_types.CopyFrom(wepb.EventTypeFilter(event_types=list(event_types)))
        if enabled is not None:
            request.enabled = enabled
        return (await self._call(self._endpoints.UpdateWebhookEndpoint, request)).endpoint

    async def delete_webhook_endpoint(self, endpoint_id: str) -> wepb.WebhookEndpoint:
        request = wepb.DeleteWebhookEndpointRequest(endpoint_id=endpoint_id)
        return (await self._call(self._endpoints.DeleteWebhookEndpoint, request)).endpoint

    async def roll_webhook_secret(
        self, endpoint_id: str, *, overlap: timedelta = timedelta(hours=24)
    ) -> tuple[wepb.WebhookEndpoint, str]:
        """A new signing secret; the old one keeps signing beside it for `overlap` (at
        most a week), so you can deploy the new one without losing a delivery."""
        request = wepb.RollWebhookEndpointSecretRequest(
            endpoint_id=endpoint_id, overlap_seconds=int(overlap.total_seconds())
        )
        reply = await self._call(self._endpoints.RollWebhookEndpointSecret, request, retry=False)
        return reply.endpoint, reply.secret
