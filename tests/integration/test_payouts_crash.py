"""Refunds and payouts with the sweeper as a real process, SIGKILLed at every step
that matters (failpoints: after signing before the record, after the record before
the broadcast, after the broadcast, after the transaction is deep enough before the
ledger is told), then restarted. Chain balances prove each was paid exactly once."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from eth_account import Account
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payout_pb2 as popb
from paymesh.ledger.v1 import payout_service_pb2 as pspb
from paymesh.ledger.v1 import payout_service_pb2_grpc as psgrpc

from tests.integration.test_payouts import fund_wallet, payout_txs, wait_payout
from tests.support.ledger import publish_head
from tests.support.procs import ServiceProcess
from tests.support.sweeper_chain import ETHER, Paid, start_stack, stop_stack
from tools import devstack

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]

FAILPOINTS = [
    "sweeper.after_sign_before_record.payout",
    "sweeper.after_record_before_broadcast.payout",
    "sweeper.after_broadcast.payout",
    "sweeper.before_complete.payout",
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory, postgres):
    s = await start_stack(tmp_path_factory.mktemp("payouts-crash"), postgres)
    try:
        yield s
    finally:
        await stop_stack(s)


def sweeper_process(stack, name: str) -> ServiceProcess:
    return ServiceProcess(
        "services.sweeper",
        stack.env(PAYMESH_SWEEPER_WORKER_ID=name),
        stack.dir / "logs" / f"{name}.log",
        devstack.free_port(),
    )


async def killed_then_restarted(proc: ServiceProcess, failpoint: str) -> None:
    await asyncio.to_thread(proc.start, {"PAYMESH_FAILPOINTS": failpoint}, False)
    assert await asyncio.to_thread(proc.wait_exit, 60) == -9, proc.tail()  # SIGKILLed by the failpoint
    await asyncio.to_thread(proc.start)  # the same worker id: it resumes its own lease at once


@pytest.mark.parametrize("failpoint", FAILPOINTS)
async def test_a_payout_killed_at_each_step_is_paid_exactly_once(stack, failpoint):
    merchant, _ = await stack.merchant()
    wallet = await fund_wallet(stack, merchant, ether=ETHER)
    to = Account.create().address
    payout = (
        await psgrpc.PayoutServiceStub(stack.channel).CreatePayout(
            pspb.CreatePayoutRequest(chain_id=31337, asset="ETH", amount=str(ETHER // 3), destination=to),
            metadata=merchant.auth,
        )
    ).payout
    proc = sweeper_process(stack, f"payout-{failpoint.split('.')[1]}")
    try:
        await killed_then_restarted(proc, failpoint)
        done = await wait_payout(stack, merchant, payout.payout_id, popb.PAYOUT_STATE_CONFIRMED)
    finally:
        proc.kill()
    txs = await payout_txs(stack, payout.payout_id)
    assert [(t["kind"], t["state"]) for t in txs] == [("payout", "confirmed")], txs  # one transaction, ever
    assert done.tx_hash == txs[0]["tx_hash"]
    assert await stack.chain.balance(to) == ETHER // 3  # paid once, to the wei
    assert await stack.chain.balance(wallet) == ETHER - ETHER // 3 - int(done.fee)


@pytest.mark.parametrize("failpoint", FAILPOINTS[1:])
async def test_a_refund_from_the_deposit_address_killed_mid_flow_is_paid_once_and_the_rest_swept(stack, failpoint):
    merchant, treasury = await stack.merchant()
    due, excess = ETHER // 10, ETHER // 20
    payment = await merchant.create(asset="ETH", amount=str(due))
    await stack.fund(payment, due + excess)
    await publish_head(stack.js, await stack.chain.head() + stack.confirmations)
    paid = Paid(payment, merchant, treasury, due + excess)
    await stack.wait_status(paid, pb.PAYMENT_STATUS_OVERPAID)
    customer = Account.create().address
    refund = (
        await psgrpc.PayoutServiceStub(stack.channel).CreateRefund(
            pspb.CreateRefundRequest(
                payment_id=payment.payment_id, mode=pspb.REFUND_AMOUNT_EXCESS, destination=customer
            ),
            metadata=merchant.auth,
        )
    ).refund
    assert refund.source == popb.PAYOUT_SOURCE_DEPOSIT_ADDRESS
    proc = sweeper_process(stack, f"refund-{failpoint.split('.')[1]}")
    try:
        await killed_then_restarted(proc, failpoint)
        done = await wait_payout(stack, merchant, refund.payout_id, popb.PAYOUT_STATE_CONFIRMED, refund=True)
        (swept,) = await stack.wait_swept(paid)
    finally:
        proc.kill()
    assert [(t["kind"], t["state"]) for t in await payout_txs(stack, refund.payout_id)] == [("payout", "confirmed")]
    assert await stack.chain.balance(customer) == excess
    assert await stack.chain.balance(payment.deposit_address) == 0
    option = swept.options[0]
    total = int(option.amount_swept) + int(option.sweep_fee) + int(option.sweep_dust) + excess + int(done.fee)
    assert total == due + excess  # every wei that came in is accounted for
    assert await stack.chain.balance(treasury) == int(option.amount_swept)
