"""The sweeper against real anvil (interval mining), NATS and Postgres with an
in-process ledger: native and ERC-20 sweeps end with exact balances, gas
top-ups are recorded, and every bad case ends with a clear reason and no loss."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import pytest_asyncio
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hexbytes import HexBytes
from paymesh.events.v1 import payment_events_pb2 as evpb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as igrpc
from paymesh.sweeper.v1 import sweeper_service_pb2 as swpb
from sqlalchemy import text

from services.common.lifecycle import chain_health_name
from services.sweeper.adapters.chain_rpc import L1_FEE_HEADROOM_PERCENT, OP_GAS_PRICE_ORACLE
from services.sweeper.app import SERVICE as SWEEPER
from tests.support.ledger import (
    ADMIN_TOKEN,
    SWEEP_LEDGER_TOKEN,
    TOKEN_ADDRESS,
    account_xpub,
    bearer,
    eventually,
    publish_chain,
    publish_head,
    transfer_event,
)
from tests.support.sweeper_chain import (
    ANVIL_KEYS,
    ETHER,
    GAS_WALLET,
    TUSD,
    Paid,
    RpcProxy,
    start_stack,
    stop_stack,
    write_sweeper_chains_file,
)

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(tmp_path_factory, postgres):
    s = await start_stack(tmp_path_factory.mktemp("sweeper"), postgres)
    try:
        yield s
    finally:
        await stop_stack(s)


async def chain_health(app) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=chain_health_name(SWEEPER, 31337))
        )
    return reply.status


def decode(raw: bytes) -> dict:
    return TypedTransaction.from_bytes(HexBytes(raw)).as_dict()


async def test_native_sweep_leaves_exactly_zero(stack):
    merchant, treasury = await stack.merchant()
    paid = [await stack.pay(merchant, treasury, amount) for amount in (ETHER // 2, 3 * ETHER + 12345)]
    async with stack.sweeper():
        swept = await stack.wait_swept(*paid)
    total_to_treasury = 0
    for p, payment in zip(paid, swept, strict=True):
        assert await stack.chain.balance(p.deposit) == 0  # not one wei left behind
        txs = await stack.sweep_txs(p.payment_id)
        assert [(t["kind"], t["state"]) for t in txs] == [("sweep", "confirmed")]
        tx = txs[0]
        assert payment.sweep_tx_hash == tx["tx_hash"]
        # The treasury got the value; the rest of the payment paid the gas, to the wei.
        assert payment.amount_swept == str(int(tx["amount"])) and payment.sweep_dust == "0"
        assert int(payment.amount_swept) + int(payment.sweep_fee) == p.amount == int(payment.amount_confirmed)
        fields = decode(tx["raw_tx"])
        assert fields["maxFeePerGas"] == fields["maxPriorityFeePerGas"] == int(tx["max_fee_per_gas"])
        assert fields["gas"] == 21_000 and fields["to"] == HexBytes(treasury)
        assert int(tx["amount"]) == fields["value"] == p.amount - 21_000 * fields["maxFeePerGas"]
        receipt = await stack.chain.wait_receipt(tx["tx_hash"])
        assert int(receipt["effectiveGasPrice"], 16) == fields["maxFeePerGas"]  # cost exactly gas x maxFee
        total_to_treasury += int(tx["amount"])
    assert await stack.chain.balance(treasury) == total_to_treasury


async def test_a_payment_paid_on_two_options_has_both_swept(stack):
    """A payment of 30 USD payable in ETH or TUSD on one deposit address, paid in full in
    ETH and then 5 TUSD more: the sweeper sweeps both jobs (the native coin first, then the
    token with a gas top-up that is never credited to the ETH option), the payment ends
    SWEPT, and the treasury holds both, to the wei."""
    merchant, treasury = await stack.merchant()
    reply = await merchant.payments.CreatePayment(
        spb.CreatePaymentRequest(
            price=pb.Money(currency="USD", amount="30.00"),
            options=[spb.AcceptedAsset(chain_id=31337, asset="ETH"), spb.AcceptedAsset(chain_id=31337, asset="TUSD")],
        ),
        metadata=merchant.auth,
    )
    payment = reply.payment
    eth_due = int(payment.options[0].amount_due)
    assert eth_due == 10**16  # 30 / 3000 ETH
    await stack.fund(payment, eth_due)
    block = await stack.fund(payment, 5 * TUSD, token=True)
    await publish_head(stack.js, max(block + stack.confirmations - 1, await stack.chain.head()))
    paid = Paid(payment, merchant, treasury, eth_due)
    overpaid = await stack.wait_status(paid, pb.PAYMENT_STATUS_OVERPAID)
    assert [o.status for o in overpaid.options] == [pb.PAYMENT_OPTION_STATUS_PAID, pb.PAYMENT_OPTION_STATUS_SURPLUS]
    async with stack.sweeper():
        (swept,) = await stack.wait_swept(paid)
    eth, tusd = swept.options
    assert (eth.amount_confirmed, tusd.amount_confirmed) == (str(eth_due), str(5 * TUSD))
    assert await stack.chain.token_balance(TOKEN_ADDRESS, treasury) == int(tusd.amount_swept) == 5 * TUSD
    assert await stack.chain.balance(treasury) == int(eth.amount_swept)
    assert int(eth.amount_swept) + int(eth.sweep_fee) + int(eth.sweep_dust) == eth_due
    assert await stack.chain.token_balance(TOKEN_ADDRESS, payment.deposit_address) == 0
    txs = await stack.sweep_txs(payment.payment_id)
    assert sorted((t["kind"], t["state"]) for t in txs) == [
        ("gas_topup", "confirmed"),
        ("sweep", "confirmed"),
        ("sweep", "confirmed"),
    ]
    (topup,) = [t for t in swept.transfers if t.kind == pb.TRANSFER_KIND_GAS_TOPUP] or [None]
    assert topup is None or not topup.credited  # reported or not, a top-up is never the customer's ETH
    # Events carry every option too (webhooks and NATS subscribers see what GetPayment shows).
    events = {kind: evpb.PaymentEvent.FromString(payload) for kind, payload in await stack.events(payment.payment_id)}
    assert list(events["overpaid"].payment.options) == list(overpaid.options)
    assert [o.amount_swept for o in events["swept"].payment.options] == [eth.amount_swept, tusd.amount_swept]


async def test_api_figures_reconcile_with_the_chain(stack):
    """What the API says reached the treasury is what the treasury's balance gained, to
    the wei; for the native coin the sweep's fee (from its receipt) and what is left at
    the deposit address (read from the chain) make up the rest of the confirmed amount.
    For a token the treasury gains exactly the amount paid, and the fee (native coin,
    paid from the gas top-up) is reported apart. Events carry the same figures, and the
    swept payment is never claimed again for the coin its own sweep paid as gas."""
    merchant, treasury = await stack.merchant()  # a fresh, empty treasury
    native = await stack.pay(merchant, treasury, 10**16)
    token = await stack.pay(merchant, treasury, 25 * TUSD, token=True)
    async with stack.sweeper():
        swept_native, swept_token = await stack.wait_swept(native, token)

    # Native: the treasury's balance change is amount_swept; fee and dust are the rest.
    assert int(swept_native.amount_swept) == await stack.chain.balance(treasury)
    (sweep,) = await stack.sweep_txs(native.payment_id)
    receipt = await stack.chain.wait_receipt(sweep["tx_hash"])
    paid_fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert int(swept_native.sweep_fee) == paid_fee == int(sweep["fee"])
    left = await stack.chain.balance(native.deposit)
    assert int(swept_native.amount_swept) + int(swept_native.sweep_fee) == int(swept_native.amount_confirmed) - left
    assert int(swept_native.sweep_dust) == left
    assert int(swept_native.amount_confirmed) == 10**16

    # Token: the treasury gained exactly what was paid; the fee is the sweep's, in native coin.
    assert await stack.chain.token_balance(TOKEN_ADDRESS, treasury) == int(swept_token.amount_swept) == 25 * TUSD
    topup, token_sweep = await stack.sweep_txs(token.payment_id)
    receipt = await stack.chain.wait_receipt(token_sweep["tx_hash"])
    paid_fee = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert int(swept_token.sweep_fee) == paid_fee == int(token_sweep["fee"]) > 0
    assert swept_token.sweep_dust == "0"
    topup_receipt = await stack.chain.wait_receipt(topup["tx_hash"])  # the gas wallet paid this one
    assert int(topup["fee"]) == int(topup_receipt["gasUsed"], 16) * int(topup_receipt["effectiveGasPrice"], 16)

    for paid, payment in ((native, swept_native), (token, swept_token)):
        events = await stack.events(paid.payment_id)
        swept_events = [evpb.PaymentEvent.FromString(payload) for kind, payload in events if kind == "swept"]
        assert len(swept_events) == 1  # SWEPT exactly once
        (event,) = swept_events
        assert (event.payment.amount_swept, event.payment.sweep_fee, event.payment.sweep_dust) == (
            payment.amount_swept,
            payment.sweep_fee,
            payment.sweep_dust,
        )
        row = await stack.sweep_row(paid.payment_id)
        assert row["sweep_due_at"] is None  # not sweepable: nothing left to claim


async def test_token_sweep_tops_up_gas_first(stack):
    merchant, treasury = await stack.merchant()
    paid = [await stack.pay(merchant, treasury, amount, token=True) for amount in (25 * TUSD, 1_234_567)]
    gas_before = await stack.chain.balance(GAS_WALLET)
    async with stack.sweeper():
        await stack.wait_swept(*paid)
    assert await stack.chain.token_balance(TOKEN_ADDRESS, treasury) == sum(p.amount for p in paid)
    spent_on_topups = 0
    for p in paid:
        assert await stack.chain.token_balance(TOKEN_ADDRESS, p.deposit) == 0
        txs = await stack.sweep_txs(p.payment_id)
        assert [(t["kind"], t["state"]) for t in txs] == [("gas_topup", "confirmed"), ("sweep", "confirmed")]
        topup, sweep = txs
        assert topup["from_address"] == GAS_WALLET and topup["to_address"] == p.deposit
        assert sweep["from_address"] == p.deposit and sweep["to_address"] == treasury
        assert int(sweep["amount"]) == p.amount
        # The top-up paid for exactly the sweep's gas limit at its fee; what the
        # estimate's buffer did not use stays as native dust on the deposit address.
        receipt = await stack.chain.wait_receipt(sweep["tx_hash"])
        used = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        assert await stack.chain.balance(p.deposit) == int(topup["amount"]) - used
        spent_on_topups += int(topup["amount"]) + 21_000 * int(topup["max_fee_per_gas"])
    assert gas_before - await stack.chain.balance(GAS_WALLET) == spent_on_topups

    # The listener reports the top-up as native coin into the deposit address (here the
    # test does, from the real receipt): it shows as the sweeper's ETH top-up, not as TUSD.
    for p in paid:
        topup, _sweep = await stack.sweep_txs(p.payment_id)
        receipt = await stack.chain.wait_receipt(topup["tx_hash"])
        event = transfer_event(
            p.deposit,
            int(topup["amount"]),
            block=int(receipt["blockNumber"], 16),
            block_hash=receipt["blockHash"],
            tx_hash=topup["tx_hash"],
        )
        event.from_address = GAS_WALLET
        await publish_chain(stack.js, "transfer", event)

        async def both(p=p):
            payment = await p.merchant.get(p.payment_id)
            return payment if len(payment.transfers) == 2 else None

        payment = await eventually(both)
        shown = [(t.asset, t.token_address, t.kind, t.credited, t.amount) for t in payment.transfers]
        assert shown == [
            ("TUSD", TOKEN_ADDRESS, pb.TRANSFER_KIND_PAYMENT, True, str(p.amount)),
            ("ETH", "", pb.TRANSFER_KIND_GAS_TOPUP, False, str(int(topup["amount"]))),
        ]
        assert payment.status == pb.PAYMENT_STATUS_SWEPT and payment.amount_swept == str(p.amount)


async def test_legacy_chain_uses_gas_price_and_still_leaves_zero(stack):
    chains = write_sweeper_chains_file(
        stack.dir / "legacy.yaml", stack.anvil.http_url, eip1559=False, block_time=stack.block_time
    )
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER)
    async with stack.sweeper(chains_file=chains):
        await stack.wait_swept(paid)
    (tx,) = await stack.sweep_txs(paid.payment_id)
    assert tx["raw_tx"][0] >= 0xC0 and tx["max_priority_fee_per_gas"] is None  # a legacy (EIP-155) transaction
    assert await stack.chain.balance(paid.deposit) == 0
    assert await stack.chain.balance(treasury) == int(tx["amount"]) == ETHER - 21_000 * int(tx["max_fee_per_gas"])


async def test_op_stack_chain_leaves_the_l1_data_fee_aside(stack):
    """l1_data_fee: op_stack: the sweeper asks the GasPriceOracle predeploy for the L1
    data fee and leaves a reserve for it. anvil has no predeploy and charges no L1 fee,
    so a stand-in answering a fixed fee sits at the predeploy's address: this proves
    the sweeper's side (it asks, reserves, and the native and token math hold)."""
    l1_fee = 123_456_789
    stand_in = "0x63" + l1_fee.to_bytes(4, "big").hex() + "600052" + "60206000f3"  # return l1_fee for any call
    reserve = -(-l1_fee * L1_FEE_HEADROOM_PERCENT // 100)
    chains = write_sweeper_chains_file(
        stack.dir / "op-stack.yaml", stack.anvil.http_url, l1_data_fee="op_stack", block_time=stack.block_time
    )
    merchant, treasury = await stack.merchant()
    native = await stack.pay(merchant, treasury, ETHER)
    token = await stack.pay(merchant, treasury, 5 * TUSD, token=True)
    await stack.chain.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, stand_in])
    try:
        async with stack.sweeper(chains_file=chains):
            await stack.wait_swept(native, token)
    finally:
        await stack.chain.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, "0x"])
    (sweep,) = await stack.sweep_txs(native.payment_id)
    gas_cost = 21_000 * int(sweep["max_fee_per_gas"])
    assert int(sweep["amount"]) == ETHER - gas_cost - reserve and int(sweep["l1_fee_reserve"]) == reserve
    assert await stack.chain.balance(native.deposit) == reserve  # the reserve: unused here, as anvil charges none
    assert await stack.chain.balance(treasury) == int(sweep["amount"])
    # The books: the value reached the treasury, the gas went to the network, the unused
    # reserve is the dust left at the deposit address; together, the confirmed amount.
    payment = await native.merchant.get(native.payment_id)
    assert payment.status == pb.PAYMENT_STATUS_SWEPT
    assert (payment.amount_swept, payment.sweep_fee, payment.sweep_dust) == (
        str(int(sweep["amount"])),
        str(gas_cost),
        str(reserve),
    )
    topup, token_sweep = await stack.sweep_txs(token.payment_id)
    assert int(topup["amount"]) == token_sweep["gas_limit"] * int(token_sweep["max_fee_per_gas"]) + reserve
    receipt = await stack.chain.wait_receipt(token_sweep["tx_hash"])
    used = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    assert await stack.chain.balance(token.deposit) == int(topup["amount"]) - used >= reserve
    assert await stack.chain.token_balance(TOKEN_ADDRESS, treasury) == 5 * TUSD


@pytest.mark.parametrize(
    ("oracle_code", "says"), [("0x", "no GasPriceOracle answers"), ("0x600080fd", "reverted getL1Fee")]
)
async def test_op_stack_setting_on_a_chain_without_the_oracle_is_a_clear_error(stack, oracle_code, says):
    chains = write_sweeper_chains_file(
        stack.dir / "not-op.yaml", stack.anvil.http_url, l1_data_fee="op_stack", block_time=stack.block_time
    )
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER)
    await stack.chain.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, oracle_code])
    try:
        async with stack.sweeper(chains_file=chains):
            row = await stack.wait_released(paid, says)
    finally:
        await stack.chain.rpc("anvil_setCode", [OP_GAS_PRICE_ORACLE, "0x"])
    assert "l1_data_fee" in row["sweep_last_error"] and "OP-stack" in row["sweep_last_error"]
    assert row["status"] == "confirmed" and await stack.chain.balance(paid.deposit) == ETHER  # nothing sent
    async with stack.sweeper() as app:  # the operator fixes chains.yaml and asks for the sweep now
        stub, channel = stack.operator(app)
        async with channel:
            await stub.SweepNow(swpb.SweepNowRequest(payment_id=paid.payment_id), metadata=bearer(ADMIN_TOKEN))
        await stack.wait_swept(paid, within=60)


async def test_dust_is_left_and_reported_not_swept_at_a_loss(stack):
    merchant, treasury = await stack.merchant()
    dust = await stack.pay(merchant, treasury, 1_000)  # far below the fee
    small_token = await stack.pay(merchant, treasury, 5, token=True)
    async with stack.sweeper(sweeper_min_amounts={"31337:TUSD": str(TUSD)}) as app:
        row = await stack.wait_released(dust, "dust")
        assert "below the sweep fee" in row["sweep_last_error"] and "not swept at a loss" in row["sweep_last_error"]
        token_row = await stack.wait_released(small_token, "minimum worth sweeping")
        for r in (row, token_row):
            assert r["status"] == "confirmed" and r["sweep_attempts"] == 1
            assert (r["sweep_due_at"] - r["sweep_due_at"].now(r["sweep_due_at"].tzinfo)).total_seconds() > 5 * 3600
        stub, channel = stack.operator(app)
        async with channel:
            status = (await stub.GetStatus(swpb.GetStatusRequest(), metadata=bearer(ADMIN_TOKEN))).chains[0]
        assert "dust" in status.last_error or "minimum" in status.last_error
    assert await stack.sweep_txs(dust.payment_id) == [] and await stack.sweep_txs(small_token.payment_id) == []
    assert await stack.chain.balance(dust.deposit) == 1_000
    assert await stack.chain.token_balance(TOKEN_ADDRESS, small_token.deposit) == 5


async def test_treasury_missing_then_set_and_swept(stack):
    merchant, _ = await stack.merchant(treasury=None)
    paid = await stack.pay(merchant, "", ETHER)
    async with stack.sweeper() as app:
        row = await stack.wait_released(paid, "has no treasury address")
        assert "SetTreasury" in row["sweep_last_error"]
        assert await stack.sweep_txs(paid.payment_id) == []
        treasury = Account.create().address
        await stack.set_treasury(merchant, treasury)
        stub, channel = stack.operator(app)
        async with channel:
            queued = await stub.SweepNow(
                swpb.SweepNowRequest(merchant_id=merchant.merchant_id), metadata=bearer(ADMIN_TOKEN)
            )
        assert queued.payments_queued == 1
        await stack.wait_swept(paid)
    assert await stack.chain.balance(paid.deposit) == 0
    assert await stack.chain.balance(treasury) > ETHER * 99 // 100


@pytest.mark.parametrize("treasury", ["0x0000000000000000000000000000000000000000", TOKEN_ADDRESS])
async def test_invalid_treasury_is_refused(stack, treasury):
    # The ledger refuses such a treasury outright...
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.merchant(treasury=treasury)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # ...and the sweeper still refuses one that reached the database some other
    # way (an older ledger, a hand edit): defence in depth.
    merchant, good = await stack.merchant()
    async with stack.ledger.engine.begin() as conn:
        await conn.execute(
            text("UPDATE treasuries SET address = :a WHERE merchant_id = :m"),
            {"a": treasury, "m": merchant.merchant_id},
        )
    paid = await stack.pay(merchant, treasury, 7 * TUSD, token=True)
    async with stack.sweeper():
        row = await stack.wait_released(paid, "treasury")
    assert "zero address" in row["sweep_last_error"] or "token contract" in row["sweep_last_error"]
    assert await stack.sweep_txs(paid.payment_id) == []
    assert await stack.chain.token_balance(TOKEN_ADDRESS, paid.deposit) == 7 * TUSD


async def test_foreign_xpub_is_refused_before_signing(stack):
    """A merchant whose xpub is not from the sweeper's seed: the derived key does not
    match the deposit address, so nothing is signed."""
    other_mnemonic = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
    merchant, treasury = await stack.merchant(xpub=account_xpub(3, other_mnemonic), account=3)
    paid = await stack.pay(merchant, treasury, ETHER // 10)
    async with stack.sweeper():
        row = await stack.wait_released(paid, "refusing to sign")
    assert "does not come from the sweeper's seed" in row["sweep_last_error"]
    assert await stack.sweep_txs(paid.payment_id) == []
    assert await stack.chain.balance(paid.deposit) == ETHER // 10


async def test_insufficient_funds_on_deposit_address_is_reported(stack):
    """The ledger counts more than the address holds (a listener bug, a reorg...):
    the sweeper refuses instead of sweeping what it cannot account for."""
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER, sent=ETHER // 2)
    token_paid = await stack.pay(merchant, treasury, 10 * TUSD, token=True, sent=4 * TUSD)
    async with stack.sweeper(sweeper_error_retry_seconds=60):  # retried in 10 min: out of later tests' way
        row = await stack.wait_released(paid, "insufficient funds")
        token_row = await stack.wait_released(token_paid, "insufficient funds")
    assert f"holds {ETHER // 2}" in row["sweep_last_error"]
    assert f"holds {4 * TUSD}" in token_row["sweep_last_error"]
    assert await stack.sweep_txs(paid.payment_id) == [] and await stack.sweep_txs(token_paid.payment_id) == []
    assert await stack.chain.balance(paid.deposit) == ETHER // 2


async def test_gas_wallet_empty_waits_reports_then_sweeps(stack):
    poor_path = "m/44'/60'/0'/0/77"  # not one of anvil's funded accounts
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, 3 * TUSD, token=True)
    async with stack.sweeper(sweeper_gas_wallet_path=poor_path) as app:
        poor = app.gas_key.address
        row = await stack.wait_released(paid, "gas wallet")
        assert f"gas wallet {poor}" in row["sweep_last_error"] and "fund it" in row["sweep_last_error"]
        assert await stack.sweep_txs(paid.payment_id) == []  # nothing signed that could not be paid for
        stub, channel = stack.operator(app)
        async with channel:
            status = (await stub.GetStatus(swpb.GetStatusRequest(chain_id=31337), metadata=bearer(ADMIN_TOKEN))).chains[
                0
            ]
            assert status.gas_wallet_address == poor and status.gas_wallet_balance == "0"
            assert "gas wallet" in status.last_error
            await stack.chain.send(ANVIL_KEYS[2], poor, ETHER)  # the operator funds it
            await stub.RetrySweep(swpb.RetrySweepRequest(payment_id=paid.payment_id), metadata=bearer(ADMIN_TOKEN))
        await stack.wait_swept(paid)
    assert await stack.chain.token_balance(TOKEN_ADDRESS, treasury) == 3 * TUSD
    txs = await stack.sweep_txs(paid.payment_id)
    assert [t["kind"] for t in txs] == ["gas_topup", "sweep"] and txs[0]["from_address"] == poor


async def test_rpc_down_sweeps_nothing_and_says_so(stack):
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER)
    proxy = await RpcProxy(stack.anvil.http_url).start()
    proxy.down = True
    chains = write_sweeper_chains_file(stack.dir / "down.yaml", proxy.url, block_time=stack.block_time)
    try:
        async with stack.sweeper(chains_file=chains, sweeper_rpc_attempts=1) as app:
            stub, channel = stack.operator(app)
            async with channel:

                async def reported():
                    status = (await stub.GetStatus(swpb.GetStatusRequest(), metadata=bearer(ADMIN_TOKEN))).chains[0]
                    return status if "RPC is unavailable" in status.last_error else None

                status = await eventually(reported, timeout=20)
            assert status.leader and status.gas_wallet_balance == ""
            row = await stack.sweep_row(paid.payment_id)
            assert row["status"] == "confirmed" and row["sweep_claimed_by"] is None  # not even claimed
            assert await chain_health(app) == health_pb2.HealthCheckResponse.NOT_SERVING
            proxy.down = False  # the node comes back
            await stack.wait_swept(paid)
            assert await chain_health(app) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await proxy.stop()
    assert await stack.chain.balance(paid.deposit) == 0


async def test_two_providers_one_refusing_broadcasts_sweeps_once_and_sends_to_both(stack):
    """A provider that is down exactly when broadcasting, beside a good one: the signed
    bytes go to both at once, the good one takes them, the payment is swept once."""
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER)
    refusing = await RpcProxy(stack.anvil.http_url).start()
    good = await RpcProxy(stack.anvil.http_url).start()
    refusing.refuse_sends = True
    chains = write_sweeper_chains_file(
        stack.dir / "two.yaml", "", rpc_urls=[refusing.url, good.url], block_time=stack.block_time
    )
    try:
        async with stack.sweeper(chains_file=chains):
            [payment] = await stack.wait_swept(paid)
        txs = await stack.sweep_txs(paid.payment_id)
        assert [(t["kind"], t["state"]) for t in txs] == [("sweep", "confirmed")]
        assert payment.sweep_tx_hash == txs[0]["tx_hash"]
        assert refusing.sends >= 1 and good.sends >= 1  # broadcast to both providers
    finally:
        await refusing.stop()
        await good.stop()
    assert await stack.chain.balance(paid.deposit) == 0
    assert await stack.chain.balance(treasury) == int(payment.amount_swept)


async def test_rpc_down_at_broadcast_resends_the_recorded_transaction(stack):
    """The node refuses the broadcast after the transaction was recorded: the payment is
    released, and the retry sends the very same signed bytes (same hash), never new ones."""
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, 2 * ETHER)
    proxy = await RpcProxy(stack.anvil.http_url).start()
    proxy.refuse_sends = True
    chains = write_sweeper_chains_file(stack.dir / "flaky.yaml", proxy.url, block_time=stack.block_time)
    try:
        async with stack.sweeper(chains_file=chains, sweeper_rpc_attempts=2):
            row = await stack.wait_released(paid, "RPC failed")
            (recorded,) = await stack.sweep_txs(paid.payment_id)
            assert recorded["state"] == "signed" and "eth_sendRawTransaction" in proxy.refused
            assert await stack.chain.balance(paid.deposit) == 2 * ETHER
            await assert_complete_sweep_refuses_wrong_figures(stack, paid, recorded)
            proxy.refuse_sends = False
            await stack.wait_swept(paid)
    finally:
        await proxy.stop()
    assert row["sweep_attempts"] >= 1
    txs = await stack.sweep_txs(paid.payment_id)
    assert [(t["tx_hash"], t["state"]) for t in txs] == [(recorded["tx_hash"], "confirmed")]
    assert await stack.chain.balance(paid.deposit) == 0
    assert await stack.chain.balance(treasury) == int(recorded["amount"])


async def assert_complete_sweep_refuses_wrong_figures(stack, paid, recorded) -> None:
    """CompleteSweep takes what reached the treasury (the recorded transaction's amount,
    not the payment's) and the fee as a decimal string; anything else is refused and
    changes nothing."""
    internal = igrpc.SweepLedgerServiceStub(stack.channel)
    fee = str(21_000 * int(recorded["max_fee_per_gas"]))
    for amount, fee_text, says in [
        (str(paid.amount), fee, "not what the recorded sweep transaction moves"),  # the gross amount
        (str(int(recorded["amount"])), "", "fee is required"),
        (str(int(recorded["amount"])), "-1", "fee must be a whole number"),
        (str(int(recorded["amount"])), "1.5", "fee must be a whole number"),
        ("0", fee, "amount must be greater than zero"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await internal.CompleteSweep(
                ipb.CompleteSweepRequest(
                    payment_id=paid.payment_id, tx_hash=recorded["tx_hash"], amount=amount, fee=fee_text
                ),
                metadata=bearer(SWEEP_LEDGER_TOKEN),
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and says in info.value.details(), (
            amount,
            fee_text,
            info.value.details(),
        )
    row = await stack.sweep_row(paid.payment_id)
    assert row["status"] == "confirmed" and row["amount_swept"] == 0 and row["sweep_fee"] == 0


async def test_stuck_transaction_is_replaced_with_bumped_fees(stack):
    """The node takes the transaction but it never gets mined (here: never propagated).
    After the stuck time the sweeper signs the same nonce with fees bumped >= 12.5 %,
    keeping the native exact-zero math, until one version is mined."""
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER)
    proxy = await RpcProxy(stack.anvil.http_url).start()
    proxy.swallow_sends = True
    chains = write_sweeper_chains_file(stack.dir / "stuck.yaml", proxy.url, block_time=stack.block_time)
    try:
        async with stack.sweeper(chains_file=chains, sweeper_stuck_after_seconds=1.0):

            async def replaced():
                txs = await stack.sweep_txs(paid.payment_id)
                return txs if len(txs) >= 3 else None

            await eventually(replaced, timeout=30)
            proxy.swallow_sends = False
            await stack.wait_swept(paid)
    finally:
        await proxy.stop()
    txs = await stack.sweep_txs(paid.payment_id)
    assert len(txs) >= 3 and txs[-1]["state"] == "confirmed"
    assert all(t["state"] == "replaced" for t in txs[:-1])
    for old, new in zip(txs, txs[1:], strict=False):
        assert new["replaces_tx_hash"] == old["tx_hash"] and new["nonce"] == old["nonce"]
        assert int(new["max_fee_per_gas"]) * 1000 >= int(old["max_fee_per_gas"]) * 1125  # bumped >= 12.5 %
        # exact-zero math kept: every version spends the whole amount, to the wei
        assert int(new["amount"]) + 21_000 * int(new["max_fee_per_gas"]) == ETHER
    assert await stack.chain.balance(paid.deposit) == 0
    assert await stack.chain.balance(treasury) == int(txs[-1]["amount"])


async def test_operator_api(stack):
    merchant, treasury = await stack.merchant()
    paid = await stack.pay(merchant, treasury, ETHER // 4)
    async with stack.sweeper() as app:
        await stack.wait_swept(paid)
        stub, channel = stack.operator(app)
        async with channel:
            for metadata, code in [
                ((), grpc.StatusCode.UNAUTHENTICATED),
                (bearer("wrong"), grpc.StatusCode.UNAUTHENTICATED),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.GetStatus(swpb.GetStatusRequest(), metadata=metadata)
                assert info.value.code() == code
            admin = bearer(ADMIN_TOKEN)
            status = await stub.GetStatus(swpb.GetStatusRequest(), metadata=admin)
            (chain,) = status.chains
            assert chain.chain_id == 31337 and chain.leader and chain.gas_wallet_address == GAS_WALLET
            assert int(chain.gas_wallet_balance) > 0 and chain.last_run_at.seconds > 0
            listed = await stub.ListSweeps(swpb.ListSweepsRequest(payment_id=paid.payment_id), metadata=admin)
            assert [t.state for t in listed.transactions] == [ipb.SWEEP_TRANSACTION_STATE_CONFIRMED]
            assert listed.transactions[0].kind == ipb.SWEEP_TRANSACTION_KIND_SWEEP
            by_merchant = await stub.ListSweeps(
                swpb.ListSweepsRequest(merchant_id=merchant.merchant_id), metadata=admin
            )
            assert len(by_merchant.transactions) == 1
            for request, code in [
                (swpb.SweepNowRequest(), grpc.StatusCode.INVALID_ARGUMENT),
                (swpb.SweepNowRequest(payment_id="pay_" + "0" * 32), grpc.StatusCode.NOT_FOUND),
                (swpb.SweepNowRequest(payment_id=paid.payment_id), grpc.StatusCode.FAILED_PRECONDITION),
            ]:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.SweepNow(request, metadata=admin)
                assert info.value.code() == code, info.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.GetStatus(swpb.GetStatusRequest(chain_id=1), metadata=admin)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ListSweeps(swpb.ListSweepsRequest(page_size=1000), metadata=admin)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_two_sweepers_in_one_process_never_double_sweep(stack):
    merchant, treasury = await stack.merchant()
    paid = [await stack.pay(merchant, treasury, ETHER + i) for i in range(4)]
    paid += [await stack.pay(merchant, treasury, (i + 1) * TUSD, token=True) for i in range(2)]
    async with stack.sweeper() as a, stack.sweeper() as b:
        await stack.wait_swept(*paid)
        assert [a.sweepers[31337].leader, b.sweepers[31337].leader].count(True) == 1
    native_total = 0
    for p in paid:
        txs = await stack.sweep_txs(p.payment_id)
        sweeps = [t for t in txs if t["kind"] == "sweep"]
        assert [t["state"] for t in sweeps] == ["confirmed"]
        if not p.token:
            native_total += int(sweeps[0]["amount"])
            assert await stack.chain.balance(p.deposit) == 0
    assert await stack.chain.balance(treasury) == native_total
    assert await stack.chain.token_balance(TOKEN_ADDRESS, treasury) == 3 * TUSD
    payments = [await p.merchant.get(p.payment_id) for p in paid]
    assert all(x.status == pb.PAYMENT_STATUS_SWEPT for x in payments)
    await asyncio.sleep(0)


async def test_signer_lease_has_one_holder_and_expires_after_a_crash(stack):
    """services/common/lease.py on real NATS KV: one holder at a time; a holder that
    stops renewing (crash) loses it when the bucket's TTL expires the key, and has
    stopped acting (`held` is false) before anyone else holds it (the sweeper's
    stop-acting rule, services/sweeper/chain_sweeper.py); a clean stop hands over at once."""
    import nats as nats_client

    from services.common.lease import KvLease, LeaseKeeper, effective_ttl, ensure_bucket

    nc = await nats_client.connect(stack.nats.url)
    try:
        kv = await ensure_bucket(nc.jetstream(), "test-leases", ttl=1.5)
        ttl = await effective_ttl(kv, 10.0, "test-leases")  # the bucket's TTL wins over the wish
        assert ttl == 1.5
        first = LeaseKeeper(KvLease(kv, "chain-1", "first"), ttl)
        second = LeaseKeeper(KvLease(kv, "chain-1", "second"), ttl)
        assert await first.step() and not await second.step()
        assert await first.lease.current_holder() == "first"
        # "first" crashes: it never renews nor releases. The key expires with the bucket's TTL.
        await eventually(second.step, timeout=10, interval=0.2)
        assert await second.lease.current_holder() == "second"
        assert not first.held  # it stopped acting by itself, before "second" could take over
        assert not await first.step() and not first.held  # its renewal fails: someone else holds it
        stop = asyncio.Event()
        revision = second.lease.revision
        task = asyncio.create_task(second.run(stop))

        async def renewed() -> bool:
            return second.lease.revision != revision

        await eventually(renewed, timeout=10)  # the keeper is running (it renewed), then stops
        stop.set()
        await task  # a clean stop releases
        assert await first.step() and first.held
        await first.lease.release()
    finally:
        await nc.close()
