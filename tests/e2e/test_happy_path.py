"""Scenario 1: create → pay → detected → confirmed → webhook → swept, for the
native coin and an ERC-20 token, with an extra NATS subscriber watching; and a
refund of an overpayment, told by webhook."""

from __future__ import annotations

import asyncio
import secrets

import grpc
import nats
import pytest
from eth_utils import to_checksum_address
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payout_pb2 as popb
from paymesh.ledger.v1 import payout_service_pb2 as pspb
from paymesh.ledger.v1 import payout_service_pb2_grpc as psgrpc

from services.notifier.verify import verify
from tests.support.ledger import create_merchant, eventually, fresh_xpub
from tests.support.webhooks import SIGNATURE, WebhookReceiver, ok
from tools.pay import TOKEN_ADDRESS

pytestmark = pytest.mark.asyncio(loop_scope="session")

ETH_AMOUNT = 10**16  # 0.01 ETH
TUSD_AMOUNT = 25_000_000  # 25 TUSD (6 decimals)


async def balance(chain, address: str, token: str | None = None) -> int:
    if token is None:
        return int(await chain.rpc("eth_getBalance", address, "latest"), 16)
    data = "0x70a08231" + address[2:].lower().rjust(64, "0")
    return int(await chain.rpc("eth_call", {"to": token, "data": data}, "latest"), 16)


async def test_native_and_token_payments_end_to_end(mesh, chain):
    treasury = to_checksum_address("0x" + secrets.token_hex(20))  # a fresh, empty address
    async with WebhookReceiver(ok()) as receiver, grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        xpub, account = fresh_xpub()
        merchant = await create_merchant(
            channel,
            xpub,
            derivation_path=f"m/44'/60'/{account}'",
            webhook_url=receiver.url,
            treasuries=[apb.Treasury(chain_id=31337, address=treasury)],
        )
        seen: list[evpb.PaymentEvent] = []
        nc = await nats.connect(mesh.env["PAYMESH_NATS_URL"])

        async def on_event(msg):
            seen.append(evpb.PaymentEvent.FromString(msg.data))

        await nc.subscribe(f"paymesh.payments.{merchant.merchant_id}.>", cb=on_event)
        try:
            native = await merchant.create(asset="ETH", amount=str(ETH_AMOUNT), idempotency_key="e2e-eth")
            token = await merchant.create(asset="TUSD", amount=str(TUSD_AMOUNT), idempotency_key="e2e-tusd")
            await chain.send_eth(native.deposit_address, ETH_AMOUNT)
            await chain.send_token(token.deposit_address, TUSD_AMOUNT)

            async def final(payment_id):
                p = await merchant.get(payment_id)
                return p if p.status == pb.PAYMENT_STATUS_SWEPT else None

            swept_native = await eventually(lambda: final(native.payment_id), timeout=90)
            swept_token = await eventually(lambda: final(token.payment_id), timeout=90)
            # The extra subscriber has seen both swept events (published after the commit the API shows).
            swept = {native.payment_id, token.payment_id}
            await eventually(
                lambda: asyncio.sleep(
                    0, result=swept <= {e.payment.payment_id for e in seen if e.type == evpb.PAYMENT_EVENT_TYPE_SWEPT}
                ),
                timeout=30,
            )
        finally:
            await nc.drain()

        # Money: the treasury got the token amount exactly and the native amount
        # minus the sweep's fee; both deposit addresses are empty.
        assert await balance(chain, treasury, TOKEN_ADDRESS) == TUSD_AMOUNT
        native_received = await balance(chain, treasury)
        assert 0 < native_received < ETH_AMOUNT
        assert await balance(chain, native.deposit_address) == 0
        assert await balance(chain, token.deposit_address, TOKEN_ADDRESS) == 0
        # The API's figures are the chain's: amount_swept is what the treasury got; for the
        # native coin the sweep's fee is the rest (nothing left at the deposit address).
        assert swept_native.amount_swept == str(native_received)
        assert int(swept_native.amount_swept) + int(swept_native.sweep_fee) == ETH_AMOUNT
        assert swept_native.sweep_dust == "0"
        assert swept_token.amount_swept == str(TUSD_AMOUNT) and int(swept_token.sweep_fee) > 0

        # Transfers name their asset: the customer's TUSD, and the sweeper's gas top-up in
        # ETH (the listener reports it like any native transfer), labelled as such.
        async def with_topup():
            p = await merchant.get(token.payment_id)
            return p if any(t.kind == pb.TRANSFER_KIND_GAS_TOPUP for t in p.transfers) else None

        topped_up = await eventually(with_topup, timeout=30)
        shown = sorted((t.kind, t.asset, t.token_address, t.credited) for t in topped_up.transfers)
        assert shown == [
            (pb.TRANSFER_KIND_PAYMENT, "TUSD", TOKEN_ADDRESS, True),
            (pb.TRANSFER_KIND_GAS_TOPUP, "ETH", "", False),
        ], topped_up.transfers
        assert [(t.kind, t.asset) for t in swept_native.transfers] == [(pb.TRANSFER_KIND_PAYMENT, "ETH")]

        # NATS: every status step, in order per payment.
        for payment in (native, token):
            mine = [e for e in seen if e.payment.payment_id == payment.payment_id]
            kinds = [evpb.PaymentEventType.Name(e.type).removeprefix("PAYMENT_EVENT_TYPE_") for e in mine]
            assert kinds[0] == "CREATED" and kinds[-1] == "SWEPT" and "CONFIRMED" in kinds, kinds
            versions = [e.payment.version for e in mine]
            assert versions == sorted(versions) and len(set(versions)) == len(versions)

        # Webhooks: every event delivered, signed with the merchant's secret.
        expected = {e.event_id for e in seen}
        await receiver.wait_for(lambda: expected <= receiver.event_ids(answered_ok=True), within=60)
        for request in receiver.succeeded():
            verify(request.body, request.headers[SIGNATURE], merchant.webhook_secret)
        # The swept webhooks show the same figures as the API, fee and dust included.
        for payment in (swept_native, swept_token):
            (body,) = {
                request.body: request.json()
                for request in receiver.succeeded()
                if request.json()["type"] == "payment.swept"
                and request.json()["data"]["payment"]["payment_id"] == payment.payment_id
            }.values()
            shown = body["data"]["payment"]
            assert (shown["amount_swept"], shown["sweep_fee"], shown["sweep_dust"]) == (
                payment.amount_swept,
                payment.sweep_fee,
                payment.sweep_dust,
            )


async def test_payment_sent_by_a_contract_is_detected_and_swept(mesh, chain):
    """A smart-contract wallet or an exchange's batch withdrawal pays with an
    internal transfer (chains.yaml: internal_transfers): seen, confirmed, swept."""
    treasury = to_checksum_address("0x" + secrets.token_hex(20))
    async with grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        xpub, account = fresh_xpub()
        merchant = await create_merchant(
            channel,
            xpub,
            derivation_path=f"m/44'/60'/{account}'",
            treasuries=[apb.Treasury(chain_id=31337, address=treasury)],
        )
        payment = await merchant.create(asset="ETH", amount=str(ETH_AMOUNT), idempotency_key="e2e-internal")
        forwarder = await chain.deploy_forwarder()
        receipt = await chain.call(
            forwarder, "split(address[],uint256[])", [payment.deposit_address], [ETH_AMOUNT], value=ETH_AMOUNT
        )
        assert int(receipt["status"], 16) == 1

        async def swept():
            p = await merchant.get(payment.payment_id)
            return p if p.status == pb.PAYMENT_STATUS_SWEPT else None

        done = await eventually(swept, timeout=90)
    (transfer,) = done.transfers
    assert transfer.tx_hash == receipt["transactionHash"] and transfer.log_index <= -2
    assert transfer.from_address.lower() == forwarder.lower()
    assert await balance(chain, payment.deposit_address) == 0
    assert done.amount_swept == str(await balance(chain, treasury))  # the amount minus the sweep's fee
    assert int(done.amount_swept) + int(done.sweep_fee) == ETH_AMOUNT and done.sweep_dust == "0"


async def test_a_refund_reaches_the_customer_and_the_merchant_hears_of_it_by_signed_webhook(mesh, chain):
    """The whole mesh: an overpaid payment's excess refunded (from the deposit address if
    the sweeper has not swept it yet, else from the funded payout wallet), the customer
    holds exactly the excess, and the merchant gets refund.created / approved /
    confirmed webhooks signed with its secret, carrying the refund and the payment."""
    treasury = to_checksum_address("0x" + secrets.token_hex(20))
    customer = to_checksum_address("0x" + secrets.token_hex(20))
    async with WebhookReceiver(ok()) as receiver, grpc.aio.insecure_channel(mesh.addr("ledger")) as channel:
        xpub, account = fresh_xpub()
        merchant = await create_merchant(
            channel,
            xpub,
            derivation_path=f"m/44'/60'/{account}'",
            webhook_url=receiver.url,
            treasuries=[apb.Treasury(chain_id=31337, address=treasury)],
        )
        payouts = psgrpc.PayoutServiceStub(channel)
        wallet = (
            await payouts.GetPayoutWallet(pspb.GetPayoutWalletRequest(chain_id=31337), metadata=merchant.auth)
        ).address
        await chain.send_eth(wallet, ETH_AMOUNT)
        payment = await merchant.create(asset="ETH", amount=str(ETH_AMOUNT), idempotency_key="e2e-refund")
        await chain.send_eth(payment.deposit_address, ETH_AMOUNT + ETH_AMOUNT // 5)

        async def overpaid():
            p = await merchant.get(payment.payment_id)
            return p if p.status in (pb.PAYMENT_STATUS_OVERPAID, pb.PAYMENT_STATUS_SWEPT) else None

        await eventually(overpaid, timeout=60)
        refund = (
            await payouts.CreateRefund(
                pspb.CreateRefundRequest(
                    payment_id=payment.payment_id, mode=pspb.REFUND_AMOUNT_EXCESS, destination=customer
                ),
                metadata=merchant.auth,
            )
        ).refund

        async def confirmed():
            r = (
                await payouts.GetRefund(pspb.GetRefundRequest(refund_id=refund.payout_id), metadata=merchant.auth)
            ).refund
            return r if r.state == popb.PAYOUT_STATE_CONFIRMED else None

        await eventually(confirmed, timeout=90)
        assert await balance(chain, customer) == ETH_AMOUNT // 5

        def refund_webhooks():
            found = [r.json() for r in receiver.succeeded() if r.json()["type"].startswith("refund.")]
            return (
                found
                if {"refund.created", "refund.approved", "refund.confirmed"} <= {b["type"] for b in found}
                else None
            )

        bodies = await receiver.wait_for(refund_webhooks, within=60)
        for request in receiver.succeeded():
            verify(request.body, request.headers[SIGNATURE], merchant.webhook_secret)
        (done,) = [b for b in bodies if b["type"] == "refund.confirmed"]
        assert done["data"]["refund"]["payout_id"] == refund.payout_id
        assert done["data"]["refund"]["amount_sent"] == str(ETH_AMOUNT // 5)
        assert done["data"]["payment"]["payment_id"] == payment.payment_id
