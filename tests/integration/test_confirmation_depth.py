"""Confirmation depth on a real anvil, listener, NATS, Postgres, ledger and
sweeper, with `confirmations: 3` (issue 12, item 1). The block that includes a
transfer is its first confirmation: the payment is CONFIRMED when its block and
2 blocks on top of it are canonical, not before; a reorg replacing 2 blocks
(confirmations-1) never takes it back; the sweeper signs nothing before then.

anvil mines only when a test says so (automine off), so every step waits on a
condition the ledger committed (its head, its orphaned blocks), never on time.
"""

from __future__ import annotations

import asyncpg
import pytest
import pytest_asyncio
from paymesh.ledger.v1 import merchant_admin_service_pb2 as apb
from paymesh.ledger.v1 import payment_pb2 as pb

from services.common.confirmations import confirmations
from services.sweeper.app import SweeperApp
from services.sweeper.settings import SweeperSettings
from tests.support.chain import CHAIN_ID, mesh, new_address, status, wait_status, wait_watching
from tests.support.ledger import (
    ADMIN_TOKEN,
    ANVIL_MNEMONIC,
    SERVICE_TOKENS,
    create_merchant,
    eventually,
    fresh_xpub,
)

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

DEPTH = 3  # chains.yaml `confirmations` of this module's chain
AMOUNT = 10**18
DETECTED, CONFIRMED, PENDING, SWEPT = (
    pb.PAYMENT_STATUS_DETECTED,
    pb.PAYMENT_STATUS_CONFIRMED,
    pb.PAYMENT_STATUS_PENDING,
    pb.PAYMENT_STATUS_SWEPT,
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def net(postgres, tmp_path_factory):
    async with mesh(
        postgres, tmp_path_factory.mktemp("depth"), database="confirmation_depth", confirmations=DEPTH
    ) as m:
        await m.chain.automine(False)  # a block only when a test mines one
        async with m.listener() as app:
            m.app = app
            yield m


# ---------------------------------------------------------------- the ledger's committed state


async def _db(net, query: str, *args):
    conn = await asyncpg.connect(net.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def wait_ledger_head(net, number: int) -> None:
    """Until the ledger committed head `number` (a head's confirmations commit with it)."""

    async def check():
        rows = await _db(net, "SELECT number FROM chain_heads WHERE chain_id = $1", CHAIN_ID)
        return rows and rows[0]["number"] >= number

    await eventually(check, timeout=20)


async def wait_orphaned(net, hashes: list[str]) -> None:
    """Until the ledger recorded these blocks as orphaned (it applied the reorg)."""

    async def check():
        rows = await _db(
            net, "SELECT block_hash FROM orphaned_blocks WHERE chain_id = $1 AND block_hash = ANY($2)", CHAIN_ID, hashes
        )
        return len(rows) == len(hashes)

    await eventually(check, timeout=20)


async def event_types(net, payment_id: str) -> list[str]:
    """Every payment event the ledger wrote for the payment, in order (the outbox)."""
    rows = await _db(net, "SELECT event_type FROM outbox WHERE payment_id = $1 ORDER BY id", payment_id)
    return [r["event_type"] for r in rows]


# ---------------------------------------------------------------- paying


async def watched_payment(net, merchant=None, amount: int = AMOUNT) -> pb.Payment:
    merchant = merchant or net.merchant
    before = (await status(net.app.port)).watched_addresses
    payment = await merchant.create(amount=str(amount))
    await wait_watching(net.app.port, before + 1)
    return payment


async def pay(net, address: str, amount: int = AMOUNT) -> int:
    """Send `amount` to `address` and mine the block that includes it; its number."""
    tx = await net.chain.send_eth(address, amount, wait=False)
    block = await net.chain.mine(1)
    receipt = await net.chain.receipt(tx)
    assert int(receipt["blockNumber"], 16) == block
    return block


async def detected_until_last_confirmation(net, merchant, payment: pb.Payment, block: int, on_head=None) -> None:
    """Mine up to DEPTH-1 confirmations of the transfer in `block`, checking after each
    committed head that the payment does not count it yet."""
    for head in range(block, block + DEPTH - 1):
        if head > block:
            assert await net.chain.mine(1) == head
        await wait_ledger_head(net, head)
        p = await merchant.get(payment.payment_id)
        assert (p.status, [t.state for t in p.transfers]) == (DETECTED, [pb.TRANSFER_STATE_SEEN]), (
            f"{confirmations(head, block)} confirmations of {DEPTH}: {pb.PaymentStatus.Name(p.status)}"
        )
        if on_head is not None:
            await on_head(head)


# ---------------------------------------------------------------- tests


async def test_confirmed_exactly_when_the_nth_confirmation_arrives(net):
    payment = await watched_payment(net)
    block = await pay(net, payment.deposit_address)  # 1 confirmation: its own block
    await detected_until_last_confirmation(net, net.merchant, payment, block)  # 1 .. DEPTH-1
    last = await net.chain.mine(1)
    assert confirmations(last, block) == DEPTH
    confirmed = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    await wait_ledger_head(net, last)
    assert confirmed.amount_confirmed == str(AMOUNT) and confirmed.confirmations_required == DEPTH
    assert [(t.block_number, t.state) for t in confirmed.transfers] == [(block, pb.TRANSFER_STATE_CONFIRMED)]
    assert await event_types(net, payment.payment_id) == ["created", "detected", "confirmed"]


async def test_a_reorg_of_confirmations_minus_one_blocks_never_unconfirms(net):
    payment = await watched_payment(net)
    block = await pay(net, payment.deposit_address)
    await net.chain.mine_many(DEPTH - 1)
    confirmed = await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    # Replace every block on top of the transfer's block (DEPTH-1 of them, the documented
    # safe depth), then mine one more so the listener sees the new branch.
    replaced = [(await net.chain.block(n))["hash"] for n in range(block + 1, block + DEPTH)]
    await net.chain.reorg(DEPTH - 1)
    assert [(await net.chain.block(n))["hash"] for n in range(block + 1, block + DEPTH)] != replaced
    head = await net.chain.mine(1)
    await wait_orphaned(net, replaced)
    await wait_ledger_head(net, head)
    after = await net.merchant.get(payment.payment_id)
    assert after.status == CONFIRMED and after.version == confirmed.version
    assert [(t.block_hash, t.state) for t in after.transfers] == [
        (confirmed.transfers[0].block_hash, pb.TRANSFER_STATE_CONFIRMED)
    ]
    assert await event_types(net, payment.payment_id) == ["created", "detected", "confirmed"]  # no "reorged"


async def test_a_reorg_of_confirmations_blocks_can_take_it_back(net):
    # The other side of the bound: `confirmations` blocks replaced, the transfer's own among them.
    payment = await watched_payment(net)
    block = await pay(net, payment.deposit_address)
    await net.chain.mine_many(DEPTH - 1)
    await wait_status(net.merchant, payment.payment_id, CONFIRMED)
    replaced = [(await net.chain.block(n))["hash"] for n in range(block, block + DEPTH)]
    await net.chain.reorg(DEPTH)  # anvil drops the replaced blocks' transactions
    await net.chain.mine(1)
    await wait_orphaned(net, replaced)
    back = await wait_status(net.merchant, payment.payment_id, PENDING)
    assert [t.state for t in back.transfers] == [pb.TRANSFER_STATE_ORPHANED]
    assert (await event_types(net, payment.payment_id))[-1] == "reorged"


def sweeper_settings(net) -> SweeperSettings:
    return SweeperSettings(
        ledger_addr=f"127.0.0.1:{net.ledger.port}",
        nats_url=net.nats.url,
        chains_file=net.chains_file,
        sweeper_chain_ids=[CHAIN_ID],
        grpc_port=0,
        admin_token=ADMIN_TOKEN,
        **SERVICE_TOKENS,
        shutdown_grace_seconds=2.0,
        sweeper_mnemonic=ANVIL_MNEMONIC,
        sweeper_interval_seconds=0.2,
        sweeper_claim_lease_seconds=10,
        sweeper_signer_lease_ttl_seconds=2.0,
        sweeper_error_retry_seconds=1,
    )


def count_rounds(chain_sweeper) -> list[int]:
    """Count the chain sweeper's finished rounds (each one claims from the ledger)."""
    finished = [0]
    original = chain_sweeper.round

    async def counted() -> None:
        try:
            await original()
        finally:
            finished[0] += 1

    chain_sweeper.round = counted
    return finished


async def sweep_transactions(net, payment_id: str) -> list[asyncpg.Record]:
    return await _db(
        net, "SELECT kind, tx_hash, state, amount FROM sweep_transactions WHERE payment_id = $1 ORDER BY id", payment_id
    )


async def test_the_sweeper_signs_nothing_before_the_nth_confirmation(net):
    treasury = new_address()
    xpub, account = fresh_xpub()
    merchant = await create_merchant(
        net.ledger_channel,
        xpub,
        derivation_path=f"m/44'/60'/{account}'",
        treasuries=[apb.Treasury(chain_id=CHAIN_ID, address=treasury)],
    )
    app = SweeperApp(sweeper_settings(net))
    await app.start()
    try:
        chain_sweeper = app.sweepers[CHAIN_ID]
        rounds = count_rounds(chain_sweeper)
        await eventually(lambda: _now(chain_sweeper.leader and rounds[0] > 0))
        payment = await watched_payment(net, merchant)
        block = await pay(net, payment.deposit_address)

        async def sweeper_had_its_chance(head: int) -> None:
            # Two rounds finished after the ledger committed this head: at least one
            # claimed entirely after it. Nothing may be claimable, nothing signed.
            seen = rounds[0]
            await eventually(lambda: _now(rounds[0] >= seen + 2))
            assert await sweep_transactions(net, payment.payment_id) == [], f"signed at head {head}"
            (row,) = await _db(
                net,
                "SELECT sweep_due_at, sweep_claimed_by FROM payment_options WHERE payment_id = $1",
                payment.payment_id,
            )
            assert (row["sweep_due_at"], row["sweep_claimed_by"]) == (None, None), f"claimable at head {head}"

        await detected_until_last_confirmation(net, merchant, payment, block, on_head=sweeper_had_its_chance)
        await net.chain.mine(1)  # the DEPTH-th confirmation: now it may be swept
        await wait_status(merchant, payment.payment_id, CONFIRMED, SWEPT)
        (sweep,) = await eventually(lambda: sweep_transactions(net, payment.payment_id))
        assert sweep["kind"] == "sweep"
        # Mine the sweep once the node has it, and DEPTH confirmations of it.
        await eventually(lambda: net.chain.rpc("eth_getTransactionByHash", sweep["tx_hash"]))
        await net.chain.mine_many(DEPTH)
        swept = await wait_status(merchant, payment.payment_id, SWEPT, timeout=60)
        assert swept.sweep_tx_hash == sweep["tx_hash"]
        # What reached the treasury plus the network fee is the whole payment (issue 12 item 2).
        assert swept.amount_swept == str(int(sweep["amount"])) and swept.sweep_dust == "0"
        assert int(swept.amount_swept) + int(swept.sweep_fee) == AMOUNT
        assert int(await net.chain.rpc("eth_getBalance", payment.deposit_address, "latest"), 16) == 0
    finally:
        await app.stop()


async def _now(value):
    return value
