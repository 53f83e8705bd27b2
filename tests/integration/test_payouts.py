"""Refunds and payouts end to end: the ledger (PayoutService, PayoutLedgerService) and
the sweeper against real anvil (interval mining), NATS and Postgres. Every amount is
checked against chain balances, to the wei; every bad request gets a clear status and
stores nothing. Every wait is bounded; nothing asserts a duration."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
import pytest_asyncio
from eth_account import Account
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import checkout_ledger_service_pb2 as cpb
from paymesh.ledger.v1 import checkout_ledger_service_pb2_grpc as cgrpc
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import merchant_admin_service_pb2_grpc as agrpc
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import payout_pb2 as popb
from paymesh.ledger.v1 import payout_service_pb2 as pspb
from paymesh.ledger.v1 import payout_service_pb2_grpc as psgrpc

from services.sweeper.adapters.chain_rpc import L1_FEE_HEADROOM_PERCENT, OP_GAS_PRICE_ORACLE
from tests.support.ledger import (
    ADMIN_TOKEN,
    CHECKOUT_LEDGER_TOKEN,
    TOKEN_ADDRESS,
    bearer,
    eventually,
    publish_chain,
    publish_head,
    transfer_event,
)
from tests.support.sweeper_chain import (
    ETHER,
    FUNDER_KEY,
    TUSD,
    Paid,
    start_stack,
    stop_stack,
    write_sweeper_chains_file,
)

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory, postgres):
    s = await start_stack(tmp_path_factory.mktemp("payouts"), postgres)
    try:
        yield s
    finally:
        await stop_stack(s)


def payouts_of(stack) -> psgrpc.PayoutServiceStub:
    return psgrpc.PayoutServiceStub(stack.channel)


def admin_of(stack) -> agrpc.MerchantAdminServiceStub:
    return agrpc.MerchantAdminServiceStub(stack.channel)


async def wait_payout(stack, merchant, payout_id: str, *states: int, refund: bool = False, within: float = 60.0):
    api = payouts_of(stack)

    async def check():
        if refund:
            found = (await api.GetRefund(pspb.GetRefundRequest(refund_id=payout_id), metadata=merchant.auth)).refund
        else:
            found = (await api.GetPayout(pspb.GetPayoutRequest(payout_id=payout_id), metadata=merchant.auth)).payout
        return found if found.state in states else None

    return await eventually(check, timeout=within, interval=0.1)


async def payout_rows(stack, merchant_id: str) -> int:
    conn = await asyncpg.connect(stack.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetchval("SELECT count(*) FROM payouts WHERE merchant_id = $1", merchant_id)
    finally:
        await conn.close()


async def payout_txs(stack, payout_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetch(
            "SELECT kind, state, tx_hash, amount, fee, from_address FROM payout_transactions WHERE payout_id = $1 "
            "ORDER BY id",
            payout_id,
        )
    finally:
        await conn.close()


async def wallet_of(stack, merchant) -> pspb.GetPayoutWalletResponse:
    return await payouts_of(stack).GetPayoutWallet(pspb.GetPayoutWalletRequest(chain_id=31337), metadata=merchant.auth)


async def fund_wallet(stack, merchant, ether: int = 0, tusd: int = 0) -> str:
    address = (await wallet_of(stack, merchant)).address
    if ether:
        await stack.chain.send(FUNDER_KEY, address, ether)
    if tusd:
        await stack.chain.send_token(FUNDER_KEY, TOKEN_ADDRESS, address, tusd)
    return address


async def test_refund_of_an_overpayments_excess_leaves_from_the_deposit_address_then_the_rest_is_swept(stack):
    merchant, treasury = await stack.merchant()
    due, excess = ETHER // 10, ETHER // 40
    payment = await merchant.create(asset="ETH", amount=str(due))
    await stack.fund(payment, due + excess)  # the customer sent more than the amount due
    await publish_head(stack.js, await stack.chain.head() + stack.confirmations)
    paid = Paid(payment, merchant, treasury, due + excess)
    await stack.wait_status(paid, pb.PAYMENT_STATUS_OVERPAID)
    customer = Account.create().address
    reply = await payouts_of(stack).CreateRefund(
        pspb.CreateRefundRequest(
            payment_id=payment.payment_id,
            mode=pspb.REFUND_AMOUNT_EXCESS,
            destination=customer,
            idempotency_key="refund-1",
            reason="paid too much",
        ),
        metadata=merchant.auth,
    )
    refund = reply.refund
    assert reply.created and refund.amount == str(excess) and refund.kind == popb.PAYOUT_KIND_REFUND
    assert refund.source == popb.PAYOUT_SOURCE_DEPOSIT_ADDRESS and refund.source_address == payment.deposit_address
    assert refund.state == popb.PAYOUT_STATE_APPROVED and not refund.fee_from_amount
    again = await payouts_of(stack).CreateRefund(
        pspb.CreateRefundRequest(
            payment_id=payment.payment_id,
            mode=pspb.REFUND_AMOUNT_EXCESS,
            destination=customer,
            idempotency_key="refund-1",
            reason="paid too much",
        ),
        metadata=merchant.auth,
    )
    assert not again.created and again.refund.payout_id == refund.payout_id
    async with stack.sweeper():
        done = await wait_payout(stack, merchant, refund.payout_id, popb.PAYOUT_STATE_CONFIRMED, refund=True)
        (swept,) = await stack.wait_swept(paid)
    assert await stack.chain.balance(customer) == excess == int(done.amount_sent)
    assert await stack.chain.balance(payment.deposit_address) == 0
    option = swept.options[0]
    assert swept.amount_refunded == option.amount_refunded == str(excess)
    # The books balance to the wei: what came in went to the customer, the treasury and the network.
    fee = int(done.fee)
    assert int(option.amount_swept) + int(option.sweep_fee) + int(option.sweep_dust) + excess + fee == due + excess
    assert await stack.chain.balance(treasury) == int(option.amount_swept)
    txs = await payout_txs(stack, refund.payout_id)
    assert [(t["kind"], t["state"]) for t in txs] == [("payout", "confirmed")]
    events = [kind for kind, _ in await stack.events(payment.payment_id)]
    assert events.index("refund_created") < events.index("refund_approved") < events.index("refund_confirmed")
    assert events.index("refund_confirmed") < events.index("swept")  # the sweep waited for the refund
    confirmed = next(
        evpb.PaymentEvent.FromString(p) for k, p in await stack.events(payment.payment_id) if k == "refund_confirmed"
    )
    assert confirmed.payout.payout_id == refund.payout_id and confirmed.payment.payment_id == payment.payment_id


async def test_refund_after_the_sweep_leaves_from_the_payout_wallet(stack):
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER // 5)
    async with stack.sweeper():
        await stack.wait_swept(paid)
        wallet = await fund_wallet(stack, merchant, ether=ETHER)
        view = await wallet_of(stack, merchant)
        assert view.derivation_path.endswith("/1/0") and view.balances[0].balance == str(ETHER)
        customer = Account.create().address
        refund = (
            await payouts_of(stack).CreateRefund(
                pspb.CreateRefundRequest(
                    payment_id=paid.payment_id, amount=str(ETHER // 10), destination=customer, idempotency_key="r"
                ),
                metadata=merchant.auth,
            )
        ).refund
        assert refund.source == popb.PAYOUT_SOURCE_PAYOUT_WALLET and refund.source_address == wallet
        done = await wait_payout(stack, merchant, refund.payout_id, popb.PAYOUT_STATE_CONFIRMED, refund=True)
    assert await stack.chain.balance(customer) == ETHER // 10
    assert await stack.chain.balance(wallet) == ETHER - ETHER // 10 - int(done.fee)
    payment = await merchant.get(paid.payment_id)
    assert payment.status == pb.PAYMENT_STATUS_SWEPT and payment.amount_refunded == str(ETHER // 10)
    # Everything received is refunded or under way: nothing more can be.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payouts_of(stack).CreateRefund(
            pspb.CreateRefundRequest(payment_id=paid.payment_id, amount=str(ETHER), destination=customer),
            metadata=merchant.auth,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most" in err.value.details()


async def test_a_batch_of_50_payouts_pays_each_destination_exactly_once(stack):
    merchant, _ = await stack.merchant()
    wallet = await fund_wallet(stack, merchant, ether=ETHER)
    destinations = [Account.create().address for _ in range(50)]
    items = [pspb.PayoutItem(amount=str(10**12 + i), destination=d, memo=f"n{i}") for i, d in enumerate(destinations)]
    reply = await payouts_of(stack).CreatePayoutBatch(
        pspb.CreatePayoutBatchRequest(chain_id=31337, asset="ETH", items=items, idempotency_key="batch-1"),
        metadata=merchant.auth,
    )
    assert reply.created and len(reply.payouts) == 50 and [p.destination for p in reply.payouts] == destinations
    again = await payouts_of(stack).CreatePayoutBatch(
        pspb.CreatePayoutBatchRequest(chain_id=31337, asset="ETH", items=items, idempotency_key="batch-1"),
        metadata=merchant.auth,
    )
    assert not again.created and [p.payout_id for p in again.payouts] == [p.payout_id for p in reply.payouts]
    async with stack.sweeper():

        async def all_confirmed():
            page = await payouts_of(stack).ListPayouts(
                pspb.ListPayoutsRequest(batch_id=reply.batch_id, page_size=100), metadata=merchant.auth
            )
            return page if all(p.state == popb.PAYOUT_STATE_CONFIRMED for p in page.payouts) else None

        page = await eventually(all_confirmed, timeout=150, interval=0.5)
    assert len(page.payouts) == 50
    for i, d in enumerate(destinations):
        assert await stack.chain.balance(d) == 10**12 + i
    fees = sum(int(p.fee) for p in page.payouts)
    assert await stack.chain.balance(wallet) == ETHER - sum(10**12 + i for i in range(50)) - fees


async def test_an_approval_required_payout_waits_for_the_operator_then_goes(stack):
    merchant, _ = await stack.merchant()
    await admin_of(stack).SetPayoutPolicy(
        apb.SetPayoutPolicyRequest(
            merchant_id=merchant.merchant_id,
            limits=[apb.AssetPayoutLimits(chain_id=31337, asset="TUSD", approval_above=str(100 * TUSD))],
        ),
        metadata=bearer(ADMIN_TOKEN),
    )
    await fund_wallet(stack, merchant, tusd=500 * TUSD)  # no ETH: the gas wallet tops it up
    to = Account.create().address
    payout = (
        await payouts_of(stack).CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="TUSD", amount=str(200 * TUSD), destination=to),
            metadata=merchant.auth,
        )
    ).payout
    assert payout.state == popb.PAYOUT_STATE_REQUESTED and payout.approval_required
    async with stack.sweeper() as app:
        for _ in range(3):  # a few rounds: nothing is signed without the approval
            app.sweepers[31337].wake.set()
            await stack.chain.rpc("evm_mine")
        assert await payout_txs(stack, payout.payout_id) == []
        approved = (
            await admin_of(stack).ApprovePayout(
                apb.ApprovePayoutRequest(payout_id=payout.payout_id), metadata=bearer(ADMIN_TOKEN)
            )
        ).payout
        assert approved.state == popb.PAYOUT_STATE_APPROVED and approved.approved_by == "operator"
        await wait_payout(stack, merchant, payout.payout_id, popb.PAYOUT_STATE_CONFIRMED)
    assert await stack.chain.token_balance(TOKEN_ADDRESS, to) == 200 * TUSD
    kinds = [t["kind"] for t in await payout_txs(stack, payout.payout_id)]
    assert kinds == ["gas_topup", "payout"]


async def test_over_the_daily_limit_is_refused_and_nothing_is_stored(stack):
    merchant, _ = await stack.merchant()
    await admin_of(stack).SetPayoutPolicy(
        apb.SetPayoutPolicyRequest(
            merchant_id=merchant.merchant_id,
            limits=[apb.AssetPayoutLimits(chain_id=31337, asset="ETH", daily_limit="1000")],
        ),
        metadata=bearer(ADMIN_TOKEN),
    )
    api = payouts_of(stack)
    to = Account.create().address
    first = await api.CreatePayout(
        pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="600", destination=to), metadata=merchant.auth
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="600", destination=to), metadata=merchant.auth
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "daily limit" in err.value.details() and "at most 400 more" in err.value.details()
    assert await payout_rows(stack, merchant.merchant_id) == 1
    # A cancelled payout does not count against the limit.
    await api.CancelPayout(pspb.CancelPayoutRequest(payout_id=first.payout.payout_id), metadata=merchant.auth)
    await api.CreatePayout(
        pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="1000", destination=to), metadata=merchant.auth
    )


async def test_bad_destinations_and_bad_requests_are_refused_and_nothing_is_stored(stack):
    merchant, treasury = await stack.merchant()
    other, _ = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER // 100)
    api = payouts_of(stack)
    wallet = (await wallet_of(stack, merchant)).address
    customer = Account.create().address
    cases = [
        (pspb.CreateRefundRequest(payment_id=paid.payment_id, amount="1", destination="0x" + "0" * 40), "zero address"),
        (pspb.CreateRefundRequest(payment_id=paid.payment_id, amount="1", destination=paid.deposit), "leaves from"),
        (pspb.CreateRefundRequest(payment_id=paid.payment_id, amount="1", destination="0x1234"), "destination"),
        (pspb.CreateRefundRequest(payment_id=paid.payment_id, amount="-1", destination=customer), "amount"),
        (
            pspb.CreateRefundRequest(
                payment_id=paid.payment_id, destination=customer, amount="1", mode=pspb.REFUND_AMOUNT_EXCESS
            ),
            "not both",
        ),
        (
            pspb.CreateRefundRequest(payment_id=paid.payment_id, destination=customer, mode=pspb.REFUND_AMOUNT_EXCESS),
            "no excess",
        ),
        (pspb.CreateRefundRequest(payment_id=paid.payment_id, amount=str(ETHER), destination=customer), "at most"),
    ]
    for request, says in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.CreateRefund(request, metadata=merchant.auth)
        assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION), request
        assert says in err.value.details(), (says, err.value.details())
    payout_cases = [
        (
            pspb.CreatePayoutRequest(chain_id=31337, asset="TUSD", amount="1", destination=TOKEN_ADDRESS),
            "token contract",
        ),
        (pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="1", destination=wallet), "leaves from"),
        (pspb.CreatePayoutRequest(chain_id=1, asset="ETH", amount="1", destination=customer), "not configured"),
        (pspb.CreatePayoutRequest(chain_id=31337, asset="DOGE", amount="1", destination=customer), "not configured"),
        (pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="0", destination=customer), "greater than zero"),
        (pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="1.5", destination=customer), "digits only"),
    ]
    for request, says in payout_cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.CreatePayout(request, metadata=merchant.auth)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert says in err.value.details(), (says, err.value.details())
    assert await payout_rows(stack, merchant.merchant_id) == 0
    # Another merchant can neither refund this payment nor read this merchant's payouts.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.CreateRefund(
            pspb.CreateRefundRequest(payment_id=paid.payment_id, amount="1", destination=customer), metadata=other.auth
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    mine = await api.CreatePayout(
        pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="5", destination=customer, idempotency_key="k"),
        metadata=merchant.auth,
    )
    for call in (
        api.GetPayout(pspb.GetPayoutRequest(payout_id=mine.payout.payout_id), metadata=other.auth),
        api.CancelPayout(pspb.CancelPayoutRequest(payout_id=mine.payout.payout_id), metadata=other.auth),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the same key for another request
        await api.CreatePayout(
            pspb.CreatePayoutRequest(
                chain_id=31337, asset="ETH", amount="6", destination=customer, idempotency_key="k"
            ),
            metadata=merchant.auth,
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_cancel_before_signing_and_never_after(stack):
    merchant, _ = await stack.merchant()
    await admin_of(stack).SetPayoutPolicy(
        apb.SetPayoutPolicyRequest(
            merchant_id=merchant.merchant_id,
            limits=[apb.AssetPayoutLimits(chain_id=31337, asset="ETH", approval_above="0")],
        ),
        metadata=bearer(ADMIN_TOKEN),
    )
    await fund_wallet(stack, merchant, ether=ETHER // 10)
    api = payouts_of(stack)
    to = Account.create().address
    waiting = (
        await api.CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="1000", destination=to), metadata=merchant.auth
        )
    ).payout
    cancelled = (
        await api.CancelPayout(pspb.CancelPayoutRequest(payout_id=waiting.payout_id), metadata=merchant.auth)
    ).payout
    assert cancelled.state == popb.PAYOUT_STATE_CANCELLED and cancelled.completed_at.seconds > 0
    with pytest.raises(grpc.aio.AioRpcError) as err:  # a cancelled payout cannot be approved
        await admin_of(stack).ApprovePayout(
            apb.ApprovePayoutRequest(payout_id=waiting.payout_id), metadata=bearer(ADMIN_TOKEN)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    sent = (
        await api.CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount="2000", destination=to), metadata=merchant.auth
        )
    ).payout
    await admin_of(stack).ApprovePayout(
        apb.ApprovePayoutRequest(payout_id=sent.payout_id), metadata=bearer(ADMIN_TOKEN)
    )
    async with stack.sweeper():
        await wait_payout(stack, merchant, sent.payout_id, popb.PAYOUT_STATE_CONFIRMED)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.CancelPayout(pspb.CancelPayoutRequest(payout_id=sent.payout_id), metadata=merchant.auth)
    assert (
        err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        and "only a requested or approved one" in err.value.details()
    )
    assert await stack.chain.balance(to) == 2000


async def test_insufficient_funds_fails_with_a_reason_and_sends_nothing(stack):
    merchant, _ = await stack.merchant()
    to = Account.create().address
    payout = (
        await payouts_of(stack).CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount=str(ETHER), destination=to),
            metadata=merchant.auth,
        )
    ).payout
    async with stack.sweeper():
        failed = await wait_payout(stack, merchant, payout.payout_id, popb.PAYOUT_STATE_FAILED)
    assert "insufficient funds in the merchant's payout wallet" in failed.failure_reason
    assert "nothing was sent" in failed.failure_reason
    assert await payout_txs(stack, payout.payout_id) == []
    assert await stack.chain.balance(to) == 0


async def test_a_token_refund_from_the_deposit_address_tops_up_gas_that_is_never_credited(stack):
    """A payment of 10 TUSD or its ETH worth, paid 12 TUSD: the 2 TUSD excess goes back
    from the deposit address, whose gas comes from a gas-wallet top-up recorded as the
    refund's transaction. Reported by the listener (here: this test) as native coin
    into the deposit address, the top-up is never credited to the ETH option."""
    merchant, treasury = await stack.merchant()
    reply = await merchant.payments.CreatePayment(
        spb.CreatePaymentRequest(
            price=pb.Money(currency="USD", amount="10.00"),
            options=[spb.AcceptedAsset(chain_id=31337, asset="TUSD"), spb.AcceptedAsset(chain_id=31337, asset="ETH")],
        ),
        metadata=merchant.auth,
    )
    payment = reply.payment
    block = await stack.fund(payment, 12 * TUSD, token=True)
    await publish_head(stack.js, max(block + stack.confirmations - 1, await stack.chain.head()))
    paid = Paid(payment, merchant, treasury, 12 * TUSD, TOKEN_ADDRESS)
    await stack.wait_status(paid, pb.PAYMENT_STATUS_OVERPAID)
    customer = Account.create().address
    refund = (
        await payouts_of(stack).CreateRefund(
            pspb.CreateRefundRequest(
                payment_id=payment.payment_id, mode=pspb.REFUND_AMOUNT_EXCESS, asset="TUSD", destination=customer
            ),
            metadata=merchant.auth,
        )
    ).refund
    assert refund.source == popb.PAYOUT_SOURCE_DEPOSIT_ADDRESS and refund.amount == str(2 * TUSD)
    async with stack.sweeper():
        await wait_payout(stack, merchant, refund.payout_id, popb.PAYOUT_STATE_CONFIRMED, refund=True)
        txs = await payout_txs(stack, refund.payout_id)
        assert [t["kind"] for t in txs] == ["gas_topup", "payout"]
        topup = txs[0]
        receipt = await stack.chain.wait_receipt(topup["tx_hash"])
        await publish_chain(  # what the listener reports: native coin into a watched address
            stack.js,
            "transfer",
            transfer_event(
                payment.deposit_address,
                int(topup["amount"]),
                block=int(receipt["blockNumber"], 16),
                block_hash=receipt["blockHash"],
                tx_hash=topup["tx_hash"],
            ),
        )
        await publish_head(stack.js, await stack.chain.head() + stack.confirmations)
        (swept,) = await stack.wait_swept(paid)
    assert await stack.chain.token_balance(TOKEN_ADDRESS, customer) == 2 * TUSD
    assert await stack.chain.token_balance(TOKEN_ADDRESS, treasury) == 10 * TUSD
    tusd, eth = swept.options
    assert tusd.amount_refunded == str(2 * TUSD) and eth.amount_confirmed == "0"
    seen = await eventually(
        lambda: _with_topup(merchant, payment.payment_id, topup["tx_hash"]), timeout=30, interval=0.2
    )
    assert not seen.credited and seen.kind == pb.TRANSFER_KIND_GAS_TOPUP


async def _with_topup(merchant, payment_id: str, tx_hash: str):
    p = await merchant.get(payment_id)
    return next((t for t in p.transfers if t.tx_hash.lower() == tx_hash.lower()), None)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def deep(tmp_path_factory, postgres):
    """A chain whose depth (8 blocks of 0.25 s) leaves time to reorg a mined payout."""
    s = await start_stack(tmp_path_factory.mktemp("payouts-deep"), postgres, confirmations=8)
    try:
        yield s
    finally:
        await stop_stack(s)


async def test_a_reorged_payout_is_broadcast_again_and_paid_once(deep):
    merchant, _ = await deep.merchant()
    wallet = await fund_wallet(deep, merchant, ether=ETHER)
    to = Account.create().address
    payout = (
        await payouts_of(deep).CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount=str(ETHER // 7), destination=to),
            metadata=merchant.auth,
        )
    ).payout
    async with deep.sweeper():

        async def mined():
            txs = await payout_txs(deep, payout.payout_id)
            return txs if txs and txs[0]["state"] == "mined" else None

        (tx,) = await eventually(mined, timeout=30, interval=0.05)
        receipt = await deep.chain.wait_receipt(tx["tx_hash"])
        depth = await deep.chain.head() - int(receipt["blockNumber"], 16) + 1
        await deep.chain.rpc("anvil_reorg", [depth, []])  # its block and those after it: gone, nothing in them
        assert await deep.chain.rpc("eth_getTransactionReceipt", [tx["tx_hash"]]) is None
        done = await wait_payout(deep, merchant, payout.payout_id, popb.PAYOUT_STATE_CONFIRMED)
    (again,) = await payout_txs(deep, payout.payout_id)
    assert again["tx_hash"] == tx["tx_hash"] == done.tx_hash  # the same bytes, mined again
    assert await deep.chain.balance(to) == ETHER // 7
    assert await deep.chain.balance(wallet) == ETHER - ETHER // 7 - int(done.fee)


async def test_a_refund_given_as_a_fiat_value_is_converted_at_the_locked_quote(stack):
    merchant, treasury = await stack.merchant()
    payment = (
        await merchant.payments.CreatePayment(
            spb.CreatePaymentRequest(chain_id=31337, asset="ETH", price=pb.Money(currency="USD", amount="30.00")),
            metadata=merchant.auth,
        )
    ).payment
    assert payment.amount_due == str(10**16)  # 30 USD at 3,000 USD per ETH
    block = await stack.fund(payment, 12 * 10**15)  # 36 USD worth
    await publish_head(stack.js, max(block + stack.confirmations - 1, await stack.chain.head()))
    await stack.wait_status(Paid(payment, merchant, treasury, 12 * 10**15), pb.PAYMENT_STATUS_OVERPAID)
    api = payouts_of(stack)
    customer = Account.create().address
    refund = (
        await api.CreateRefund(
            pspb.CreateRefundRequest(
                payment_id=payment.payment_id, value=pb.Money(currency="USD", amount="6.00"), destination=customer
            ),
            metadata=merchant.auth,
        )
    ).refund
    assert refund.amount == str(2 * 10**15)  # floor(6.00 x 10^18 / 3000)
    bad = [
        (
            pspb.CreateRefundRequest(payment_id=payment.payment_id, value=pb.Money(currency="EUR", amount="1.00")),
            "priced in USD",
        ),
        (
            pspb.CreateRefundRequest(payment_id=payment.payment_id, value=pb.Money(currency="USD", amount="1.001")),
            "value",
        ),
        (
            pspb.CreateRefundRequest(
                payment_id=payment.payment_id, amount="5", value=pb.Money(currency="USD", amount="1")
            ),
            "one of amount, value or mode",
        ),
    ]
    for request, says in bad:
        request.destination = customer
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.CreateRefund(request, metadata=merchant.auth)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and says in err.value.details(), err.value.details()
    unpriced = await stack.pay(merchant, treasury, 10**15)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.CreateRefund(
            pspb.CreateRefundRequest(
                payment_id=unpriced.payment_id, value=pb.Money(currency="USD", amount="1.00"), destination=customer
            ),
            metadata=merchant.auth,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "has no price" in err.value.details()


async def test_a_claim_link_refund_sets_its_amount_aside_and_takes_one_address_once(stack):
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, 10**15)
    api = payouts_of(stack)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.CreateRefund(
            pspb.CreateRefundRequest(
                payment_id=paid.payment_id, amount="1", claim_link=True, destination=Account.create().address
            ),
            metadata=merchant.auth,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not both" in err.value.details()
    refund = (
        await api.CreateRefund(
            pspb.CreateRefundRequest(payment_id=paid.payment_id, amount=str(6 * 10**14), claim_link=True),
            metadata=merchant.auth,
        )
    ).refund
    assert refund.state == popb.PAYOUT_STATE_AWAITING_CLAIM
    # Its amount is set aside: only the rest can be refunded meanwhile.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.CreateRefund(
            pspb.CreateRefundRequest(
                payment_id=paid.payment_id, amount=str(5 * 10**14), destination=Account.create().address
            ),
            metadata=merchant.auth,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 400000000000000" in err.value.details()
    checkout = cgrpc.CheckoutLedgerServiceStub(stack.channel)
    token = refund.claim_url.rsplit("/", 1)[-1] if refund.claim_url else ""
    if not token:  # no checkout base URL in this stack: read the token where the ledger keeps it
        conn = await asyncpg.connect(stack.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            token = await conn.fetchval("SELECT claim_token FROM payouts WHERE id = $1", refund.payout_id)
        finally:
            await conn.close()
    auth = bearer(CHECKOUT_LEDGER_TOKEN)
    view = (await checkout.GetRefundClaim(cpb.GetRefundClaimRequest(claim_token=token), metadata=auth)).claim
    assert view.open and view.amount == str(6 * 10**14) and view.destination == ""
    customer = Account.create().address
    claimed = (
        await checkout.SubmitRefundClaim(
            cpb.SubmitRefundClaimRequest(claim_token=token, destination=customer, destination_again=customer.lower()),
            metadata=auth,
        )
    ).claim
    assert not claimed.open and claimed.destination == customer and claimed.state == popb.PAYOUT_STATE_APPROVED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await checkout.SubmitRefundClaim(
            cpb.SubmitRefundClaimRequest(claim_token=token, destination=customer, destination_again=customer),
            metadata=auth,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    for bad in ("", "x" * 10, "A" * 43):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await checkout.GetRefundClaim(cpb.GetRefundClaimRequest(claim_token=bad), metadata=auth)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    async with stack.sweeper():
        await wait_payout(stack, merchant, refund.payout_id, popb.PAYOUT_STATE_CONFIRMED, refund=True)
    assert await stack.chain.balance(customer) == 6 * 10**14


async def test_on_an_op_stack_chain_a_payout_reserves_the_l1_data_fee(stack):
    """l1_data_fee: op_stack (a stand-in GasPriceOracle at the predeploy, as in
    test_sweeper): the payout's signed transaction leaves the L1 data fee reserve
    aside, a wallet that cannot also cover the reserve fails before anything is
    signed, and the wallet's books hold to the wei (anvil itself charges no L1 fee)."""
    l1_fee = 123_456_789
    stand_in = "0x63" + l1_fee.to_bytes(4, "big").hex() + "600052" + "60206000f3"
    reserve = -(-l1_fee * L1_FEE_HEADROOM_PERCENT // 100)
    chains = write_sweeper_chains_file(
        stack.dir / "op-stack-payouts.yaml", stack.anvil.http_url, l1_data_fee="op_stack", block_time=stack.block_time
    )
    merchant, _ = await stack.merchant()
    wallet = await fund_wallet(stack, merchant, ether=ETHER // 100)
    api = payouts_of(stack)
    to = Account.create().address
    ok = (
        await api.CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount=str(ETHER // 200), destination=to),
            metadata=merchant.auth,
        )
    ).payout
    await stack.chain.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, stand_in])
    try:
        async with stack.sweeper(chains_file=chains):
            done = await wait_payout(stack, merchant, ok.payout_id, popb.PAYOUT_STATE_CONFIRMED)
            left = await stack.chain.balance(wallet)
            # Exactly what is left as value: the gas and the L1 reserve are missing, so it fails unsigned.
            too_much = (
                await api.CreatePayout(
                    pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount=str(left), destination=to),
                    metadata=merchant.auth,
                )
            ).payout
            failed = await wait_payout(stack, merchant, too_much.payout_id, popb.PAYOUT_STATE_FAILED)
    finally:
        await stack.chain.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, "0x"])
    assert "insufficient funds" in failed.failure_reason and await payout_txs(stack, too_much.payout_id) == []
    conn = await asyncpg.connect(stack.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        row = await conn.fetchrow(
            "SELECT l1_fee_reserve, gas_limit, max_fee_per_gas FROM payout_transactions WHERE payout_id = $1",
            ok.payout_id,
        )
    finally:
        await conn.close()
    assert int(row["l1_fee_reserve"]) == reserve
    assert await stack.chain.balance(to) == ETHER // 200
    assert await stack.chain.balance(wallet) == ETHER // 100 - ETHER // 200 - int(done.fee)
