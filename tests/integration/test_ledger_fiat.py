"""Fiat-priced payments on a ledger with real rate sources: real Postgres, its own
NATS JetStream, and Chainlink feeds on anvil.

The feeds are tools/contracts/TestPriceFeed.sol, a STAND-IN for a Chainlink
AggregatorV3 feed (it answers `decimals()` and `latestRoundData()` as a real feed
does; the test sets its answers). Transfers reach the ledger as chain events on
NATS, as the listener publishes them. Every wait is bounded; nothing asserts a duration.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import grpc
import nats
import pytest
import pytest_asyncio
from paymesh.events.v1 import chain_events_pb2 as cpb
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from paymesh.ledger.v1 import sweep_ledger_service_pb2 as ipb
from paymesh.ledger.v1 import sweep_ledger_service_pb2_grpc as igrpc
from sqlalchemy import text

from services.ledger.app import LedgerApp
from tests.integration.conftest import ledger_settings
from tests.support.ledger import (
    SWEEP_LEDGER_TOKEN,
    TOKEN_ADDRESS,
    bearer,
    create_merchant,
    eventually,
    fresh_xpub,
    next_block,
    publish_chain,
    publish_head,
    random_hash,
    transfer_event,
    write_chains_file,
)
from tools import devstack
from tools.price_feed import deploy_price_feed, set_answer, set_round

pytestmark = pytest.mark.asyncio(loop_scope="session")

LOCK_WINDOW = 3  # seconds: short, so the re-quote test need not wait long


@pytest.fixture(scope="module")
def feeds(anvil) -> dict[str, str]:
    eur = deploy_price_feed(anvil.http_url, Decimal("2800.00"), 8, "ETH / EUR")
    # Stale from the start: its only round was updated two hours ago (max age 1 h).
    set_round(
        anvil.http_url,
        eur,
        round_id=2,
        answer=Decimal("2800.00"),
        updated_at=int(time.time()) - 7200,
        answered_in_round=2,
    )
    return {
        "ETH/USD": deploy_price_feed(anvil.http_url, Decimal("3000.00"), 8, "ETH / USD"),
        "TUSD/USD": deploy_price_feed(anvil.http_url, Decimal("1.00"), 8, "TUSD / USD"),
        "ETH/EUR": eur,
    }


@pytest.fixture(scope="module")
def own_nats(stack_dir: Path) -> Iterator[devstack.Nats]:
    """Its own NATS: the session ledger consumes the shared one's chain events."""
    server = devstack.start_nats(stack_dir / f"nats-fiat-{devstack.free_port()}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fiat_files(anvil, feeds, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("fiat")
    chains = write_chains_file(folder / "chains.yaml", rpc_url=anvil.http_url)
    rates = folder / "rates.yaml"
    rates.write_text(
        f"""lock_window_seconds: {LOCK_WINDOW}
refresh_seconds: 0.2
rates:
  - {{asset: ETH, currency: USD, source: chainlink, chain_id: 31337, feed: "{feeds["ETH/USD"]}", max_age_seconds: 3600}}
  - {{asset: ETH, currency: EUR, source: chainlink, chain_id: 31337, feed: "{feeds["ETH/EUR"]}", max_age_seconds: 3600}}
  - asset: TUSD
    currency: USD
    source: fixed
    guard: {{source: chainlink, chain_id: 31337, feed: "{feeds["TUSD/USD"]}", max_age_seconds: 3600}}
    max_deviation_bps: 200
"""
    )
    return chains, rates


class FiatLedger:
    """A ledger with rate sources that the tests may restart on the same database."""

    def __init__(self, database_url: str, nats_url: str, chains: Path, rates: Path) -> None:
        self.settings = ledger_settings(database_url, nats_url, chains, rates_file=rates)
        self.app: LedgerApp | None = None

    async def start(self) -> None:
        self.app = LedgerApp(self.settings)
        await self.app.start()

    async def stop(self) -> None:
        assert self.app is not None
        await self.app.stop()

    @property
    def target(self) -> str:
        assert self.app is not None
        return f"127.0.0.1:{self.app.port}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fiat(postgres, own_nats, fiat_files) -> AsyncIterator[FiatLedger]:
    ledger = FiatLedger(postgres.create_database("ledger_fiat"), own_nats.url, *fiat_files)
    await ledger.start()
    try:
        yield ledger
    finally:
        await ledger.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def shop(fiat):
    async with grpc.aio.insecure_channel(fiat.target) as channel:
        xpub, account = fresh_xpub()
        yield await create_merchant(channel, xpub, derivation_path=f"m/44'/60'/{account}'")


@pytest_asyncio.fixture(loop_scope="session")
async def js(own_nats):
    nc = await nats.connect(own_nats.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.drain()


def usd(amount: str) -> pb.Money:
    return pb.Money(currency="USD", amount=amount)


async def wait_status(shop, payment_id: str, status: int) -> pb.Payment:
    async def check():
        p = await shop.get(payment_id)
        return p if p.status == status else None

    return await eventually(check)


async def pay(js, payment: pb.Payment, amount: int, *, token: str = "", block_time: datetime | None = None) -> None:
    block = next_block()
    event = transfer_event(payment.deposit_address, amount, block=block, token=token, block_time=block_time)
    await publish_chain(js, "transfer", event)
    await publish_head(js, block + 1)  # 2 confirmations


async def count_payments(fiat: FiatLedger, merchant_id: str) -> int:
    assert fiat.app is not None
    async with fiat.app.engine.connect() as conn:
        return (
            await conn.execute(text("SELECT count(*) FROM payments WHERE merchant_id = :m"), {"m": merchant_id})
        ).scalar_one()


async def test_usd_price_quoted_from_the_feed_and_paid_in_eth(fiat, shop, js, feeds):
    p = await shop.create(asset="ETH", amount="", price=usd("19.99"))
    # ceil(19.99 x 10^18 / 3000) wei: 6,663,333,333,333,333.33... rounded up.
    assert p.amount_due == "6663333333333334"
    assert p.price == usd("19.99")
    q = p.quote
    assert (q.asset, q.currency, Decimal(q.rate)) == ("ETH", "USD", 3000)  # "3000.00000000": the feed's 8 decimals
    assert q.source == f"chainlink 31337:{feeds['ETH/USD']}"
    assert q.expires_at.ToDatetime() - q.quoted_at.ToDatetime() == timedelta(seconds=LOCK_WINDOW)
    await pay(js, p, int(p.amount_due))
    done = await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert done.value_confirmed == usd("19.99")  # 6663333333333334 wei x 3000, rounded down to the cent
    (transfer,) = done.transfers
    assert transfer.value == usd("19.99") and not transfer.after_quote_expiry


async def test_tusd_at_its_peg_and_refused_off_it(fiat, shop, js, feeds, anvil):
    p = await shop.create(asset="TUSD", amount="", price=usd("5.00"))
    assert p.amount_due == "5000000" and Decimal(p.quote.rate) == 1
    assert p.quote.source.startswith("fixed")
    await pay(js, p, 5_000_000, token=TOKEN_ADDRESS)
    await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    # The guard feed says 0.95: more than 2 % off, new TUSD payments are refused.
    set_answer(anvil.http_url, feeds["TUSD/USD"], Decimal("0.95"))
    try:

        async def refused():
            try:
                await shop.create(asset="TUSD", amount="", price=usd("5.00"))
            except grpc.aio.AioRpcError as err:
                return err
            return None  # the refresher has not read the new answer yet

        err = await eventually(refused)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
        assert "depegged" in err.details() and "0.95" in err.details()
        before = await count_payments(fiat, shop.merchant_id)
        with pytest.raises(grpc.aio.AioRpcError):
            await shop.create(asset="TUSD", amount="", price=usd("5.00"))
        assert await count_payments(fiat, shop.merchant_id) == before  # nothing stored
        # Base units are the merchant's own choice: still accepted.
        assert (await shop.create(asset="TUSD", amount="5000000")).amount_due == "5000000"
    finally:
        set_answer(anvil.http_url, feeds["TUSD/USD"], Decimal("1.00"))

        async def pegged():
            try:
                return await shop.create(asset="TUSD", amount="", price=usd("1.00"))
            except grpc.aio.AioRpcError:
                return None

        await eventually(pegged)


async def test_a_stale_feed_is_unavailable_and_nothing_is_stored(fiat, shop):
    before = await count_payments(fiat, shop.merchant_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.create(asset="ETH", amount="", price=pb.Money(currency="EUR", amount="10.00"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "ETH/EUR" in err.value.details() and "max age" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.create(asset="ETH", amount="", price=pb.Money(currency="GBP", amount="10.00"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "ETH/GBP" in err.value.details()
    assert await count_payments(fiat, shop.merchant_id) == before


async def test_tolerance_on_a_priced_payment(fiat, shop, js):
    policy = pb.PaymentPolicy(underpayment_tolerance_bps=50)
    inside = await shop.create(asset="TUSD", amount="", price=usd("100.00"), policy=policy)
    outside = await shop.create(asset="TUSD", amount="", price=usd("100.00"), policy=policy)
    await pay(js, inside, 99_700_000, token=TOKEN_ADDRESS)  # 0.3 % short (an exchange took its fee)
    await pay(js, outside, 99_400_000, token=TOKEN_ADDRESS)  # 0.6 % short
    ok = await wait_status(shop, inside.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert ok.value_confirmed == usd("99.70") and ok.amount_minimum == "99500000"
    await wait_status(shop, outside.payment_id, pb.PAYMENT_STATUS_UNDERPAID)


async def test_an_amount_tier_waits_longer(fiat, shop, js):
    policy = pb.PaymentPolicy(
        confirmation_tiers=[pb.ConfirmationTier(min_price=usd("1000"), confirmations=6)],
    )
    small = await shop.create(asset="TUSD", amount="", price=usd("999.99"), policy=policy)
    large = await shop.create(asset="TUSD", amount="", price=usd("1000.00"), policy=policy)
    assert (small.confirmations_required, large.confirmations_required) == (2, 6)
    block = next_block()
    await publish_chain(
        js, "transfer", transfer_event(large.deposit_address, 1_000_000_000, block=block, token=TOKEN_ADDRESS)
    )
    await publish_head(js, block + 4)  # 5 confirmations: not enough for 6
    await wait_status(shop, large.payment_id, pb.PAYMENT_STATUS_DETECTED)
    await publish_head(js, block + 5)
    await wait_status(shop, large.payment_id, pb.PAYMENT_STATUS_CONFIRMED)


async def test_the_quote_survives_a_ledger_restart(fiat, shop, js, feeds, anvil):
    p = await shop.create(asset="ETH", amount="", price=usd("30.00"))
    assert p.amount_due == "10000000000000000"  # 30 / 3000 ETH
    await fiat.stop()
    set_answer(anvil.http_url, feeds["ETH/USD"], Decimal("3500.00"))
    try:
        await fiat.start()
        async with grpc.aio.insecure_channel(fiat.target) as channel:
            from paymesh.ledger.v1 import payment_service_pb2_grpc as sgrpc

            shop.payments = sgrpc.PaymentServiceStub(channel)
            again = await shop.get(p.payment_id)
            assert again.quote == p.quote and again.amount_due == p.amount_due
            # Paid within the lock window at the locked quote: confirmed, not flagged.
            await pay(js, p, 10**16, block_time=p.quote.quoted_at.ToDatetime(tzinfo=UTC) + timedelta(seconds=1))
            done = await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
            assert Decimal(done.quote.rate) == 3000 and not done.transfers[0].after_quote_expiry
            fresh = await shop.create(asset="ETH", amount="", price=usd("35.00"))
            assert Decimal(fresh.quote.rate) == 3500 and fresh.amount_due == "10000000000000000"
    finally:
        set_answer(anvil.http_url, feeds["ETH/USD"], Decimal("3000.00"))


async def test_requote_after_the_lock_window_and_late_funds_flagged(fiat, shop, js):
    p = await shop.create(asset="TUSD", amount="", price=usd("2.00"))
    kept = await shop.payments.RequotePayment(spb.RequotePaymentRequest(payment_id=p.payment_id), metadata=shop.auth)
    assert not kept.requoted and kept.payment.quote == p.quote  # still in its window

    async def requoted():
        reply = await shop.payments.RequotePayment(
            spb.RequotePaymentRequest(payment_id=p.payment_id), metadata=shop.auth
        )
        return reply if reply.requoted else None

    reply = await eventually(requoted, timeout=LOCK_WINDOW + 10)
    assert reply.payment.quote.quoted_at.ToDatetime() > p.quote.quoted_at.ToDatetime()
    assert reply.payment.version == p.version + 1
    # Funds mined after the (new) window: credited at the locked quote and flagged.
    late = reply.payment.quote.expires_at.ToDatetime(tzinfo=UTC) + timedelta(seconds=1)
    await pay(js, reply.payment, 2_000_000, token=TOKEN_ADDRESS, block_time=late)
    done = await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert done.transfers[0].after_quote_expiry and done.transfers[0].value == usd("2.00")
    with pytest.raises(grpc.aio.AioRpcError) as err:  # paid: nothing to re-quote
        await shop.payments.RequotePayment(spb.RequotePaymentRequest(payment_id=p.payment_id), metadata=shop.auth)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    base = await shop.create(asset="ETH", amount="1000")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.payments.RequotePayment(spb.RequotePaymentRequest(payment_id=base.payment_id), metadata=shop.auth)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "base units" in err.value.details()


# ---------------------------------------------------------------- several options

SWEEP_AUTH = bearer(SWEEP_LEDGER_TOKEN)
BASE = 8453  # the second chain of write_chains_file: ETH, 5 confirmations


def accepts(*options: tuple[int, str]) -> list[spb.AcceptedAsset]:
    return [spb.AcceptedAsset(chain_id=c, asset=a) for c, a in options]


async def create_with_options(shop, price: pb.Money, **fields) -> pb.Payment:
    reply = await shop.payments.CreatePayment(spb.CreatePaymentRequest(price=price, **fields), metadata=shop.auth)
    return reply.payment


async def pay_on(js, payment: pb.Payment, amount: int, *, chain_id: int, token: str = "", **event) -> None:
    """A transfer on `chain_id` and the heads that give it that chain's depth (2, or 5 on BASE)."""
    block = next_block()
    depth = 5 if chain_id == BASE else 2
    message = transfer_event(payment.deposit_address, amount, block=block, token=token, chain_id=chain_id, **event)
    await publish_chain(js, "transfer", message)
    await publish_head(js, block + depth - 1, chain_id=chain_id)


def by_asset(p: pb.Payment) -> dict[tuple[int, str], pb.PaymentOption]:
    return {(o.chain_id, o.asset): o for o in p.options}


async def test_the_same_price_paid_in_tusd_on_a_second_option(fiat, shop, js):
    p = await create_with_options(shop, usd("30.00"), options=accepts((31337, "ETH"), (31337, "TUSD")))
    eth, tusd = p.options
    assert (eth.asset, eth.amount_due, eth.selected) == ("ETH", "10000000000000000", True)  # 30 / 3000
    assert (tusd.asset, tusd.amount_due, tusd.selected) == ("TUSD", "30000000", False)
    assert Decimal(tusd.quote.rate) == 1 and tusd.quote.source.startswith("fixed")
    assert [o.status for o in p.options] == [pb.PAYMENT_OPTION_STATUS_AWAITING] * 2
    assert (p.chain_id, p.asset, p.amount_due) == (31337, "ETH", eth.amount_due)  # the headline: the first option
    await pay_on(js, p, 30_000_000, chain_id=31337, token=TOKEN_ADDRESS)
    done = await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert (done.asset, done.amount_due, done.amount_confirmed, done.token_address) == (
        "TUSD",
        "30000000",
        "30000000",
        TOKEN_ADDRESS,
    )
    assert done.value_confirmed == usd("30.00") and done.transfers[0].value == usd("30.00")
    options = by_asset(done)
    assert options[31337, "TUSD"].status == pb.PAYMENT_OPTION_STATUS_PAID and options[31337, "TUSD"].selected
    assert options[31337, "ETH"].status == pb.PAYMENT_OPTION_STATUS_AWAITING
    assert options[31337, "ETH"].amount_received == "0"


async def test_paid_on_two_options_at_once_the_first_pays_and_the_other_is_kept_as_surplus(fiat, shop, js):
    p = await create_with_options(shop, usd("30.00"), options=accepts((31337, "ETH"), (BASE, "ETH")))
    assert [o.confirmations_required for o in p.options] == [2, 5]  # each chain's own depth
    await pay_on(js, p, 10**16, chain_id=BASE)
    paid = await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    assert (paid.chain_id, paid.confirmations_required) == (BASE, 5)
    await pay_on(js, p, 10**16, chain_id=31337)
    both = await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_OVERPAID)
    options = by_asset(both)
    assert options[BASE, "ETH"].status == pb.PAYMENT_OPTION_STATUS_PAID and options[BASE, "ETH"].selected
    assert options[31337, "ETH"].status == pb.PAYMENT_OPTION_STATUS_SURPLUS
    assert options[31337, "ETH"].amount_confirmed == options[BASE, "ETH"].amount_confirmed == str(10**16)
    assert options[31337, "ETH"].value_confirmed == usd("30.00")
    assert {t.chain_id for t in both.transfers} == {31337, BASE} and all(t.credited for t in both.transfers)
    # The sweeper gets a job on each chain that received funds (a legacy sweeper, none).
    async with grpc.aio.insecure_channel(fiat.target) as channel:
        sweeps = igrpc.SweepLedgerServiceStub(channel)
        worker = f"fiat-{p.payment_id[-6:]}"
        legacy = await sweeps.ClaimSweeps(
            ipb.ClaimSweepsRequest(chain_id=BASE, worker_id=worker, limit=500, lease_seconds=30), metadata=SWEEP_AUTH
        )
        assert p.payment_id not in [j.payment_id for j in legacy.jobs]
        for chain_id in (31337, BASE):
            claimed = await sweeps.ClaimSweeps(
                ipb.ClaimSweepsRequest(
                    chain_id=chain_id, worker_id=worker, limit=500, lease_seconds=30, jobs_per_asset=True
                ),
                metadata=SWEEP_AUTH,
            )
            (job,) = [j for j in claimed.jobs if j.payment_id == p.payment_id]
            assert (job.chain_id, job.asset, job.amount, job.deposit_address) == (
                chain_id,
                "ETH",
                str(10**16),
                p.deposit_address,
            )
            await sweeps.ReleaseSweep(
                ipb.ReleaseSweepRequest(
                    payment_id=p.payment_id,
                    worker_id=worker,
                    error="test done",
                    retry_after_seconds=3600,
                    chain_id=chain_id,
                    asset="ETH",
                ),
                metadata=SWEEP_AUTH,
            )
        with pytest.raises(grpc.aio.AioRpcError) as err:  # two jobs: an unnamed one is ambiguous
            await sweeps.ReleaseSweep(
                ipb.ReleaseSweepRequest(payment_id=p.payment_id, worker_id=worker, retry_after_seconds=1),
                metadata=SWEEP_AUTH,
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "several sweep jobs" in err.value.details()


async def test_a_reorg_of_the_paying_transfer_hands_the_payment_to_the_other_option(fiat, shop, js):
    p = await create_with_options(shop, usd("30.00"), options=accepts((31337, "ETH"), (BASE, "ETH")))
    orphan = random_hash()
    block = next_block()
    await publish_chain(js, "transfer", transfer_event(p.deposit_address, 10**16, block=block, block_hash=orphan))
    await publish_head(js, block + 1)
    await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    await pay_on(js, p, 10**16, chain_id=BASE)
    await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_OVERPAID)
    await publish_chain(
        js,
        "reorg",
        cpb.ReorgObserved(
            chain_id=31337,
            common_ancestor_number=block - 1,
            common_ancestor_hash=random_hash(),
            orphaned_block_hashes=[orphan],
            new_head_number=block + 1,
            new_head_hash=random_hash(),
        ),
    )
    after = await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
    options = by_asset(after)
    assert options[BASE, "ETH"].status == pb.PAYMENT_OPTION_STATUS_PAID and after.chain_id == BASE
    assert options[31337, "ETH"].status == pb.PAYMENT_OPTION_STATUS_AWAITING
    assert options[31337, "ETH"].amount_received == "0"
    assert sorted(t.state for t in after.transfers) == [pb.TRANSFER_STATE_CONFIRMED, pb.TRANSFER_STATE_ORPHANED]


async def test_partials_on_two_options_do_not_add_up(fiat, shop, js):
    p = await create_with_options(shop, usd("30.00"), options=accepts((31337, "ETH"), (31337, "TUSD")))
    await pay_on(js, p, 6 * 10**15, chain_id=31337)  # 18 USD of ETH
    await pay_on(js, p, 15_000_000, chain_id=31337, token=TOKEN_ADDRESS)  # 15 USD of TUSD

    async def both_applied():  # UNDERPAID already holds after the first transfer alone
        found = await shop.get(p.payment_id)
        return found if len(found.transfers) == 2 and found.status == pb.PAYMENT_STATUS_UNDERPAID else None

    short = await eventually(both_applied)
    assert [o.status for o in short.options] == [pb.PAYMENT_OPTION_STATUS_UNDERPAID] * 2
    assert short.asset == "ETH"  # the option of the first transfer received


async def test_accept_all_assets_offers_every_asset_with_a_rate(fiat, shop):
    p = await create_with_options(shop, usd("30.00"), accept_all_assets=True)
    assert [(o.chain_id, o.asset) for o in p.options] == [(31337, "ETH"), (31337, "TUSD"), (BASE, "ETH")]
    only_base = await create_with_options(shop, usd("30.00"), accept_all_assets=True, accept_chain_ids=[BASE])
    assert [(o.chain_id, o.asset) for o in only_base.options] == [(BASE, "ETH")]
    before = await count_payments(fiat, shop.merchant_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # ETH/EUR is stale, TUSD has no EUR rate: none left
        await create_with_options(shop, pb.Money(currency="EUR", amount="10.00"), accept_all_assets=True)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "no configured asset" in err.value.details()
    assert await count_payments(fiat, shop.merchant_id) == before


BAD_OPTIONS = [
    (dict(options=accepts((31337, "ETH"))), grpc.StatusCode.INVALID_ARGUMENT, "need a price", False),
    (dict(options=accepts((31337, "ETH")), chain_id=31337), grpc.StatusCode.INVALID_ARGUMENT, "give one of", True),
    (dict(options=accepts((31337, "ETH"), (31337, "eth"))), grpc.StatusCode.INVALID_ARGUMENT, "repeats", True),
    (dict(options=accepts((31337, "ETH"), (999, "ETH"))), grpc.StatusCode.NOT_FOUND, "options[1]: chain 999", True),
    (dict(options=accepts((BASE, "TUSD"))), grpc.StatusCode.NOT_FOUND, "options[0]: asset 'TUSD'", True),
    (dict(options=accepts(*[(31337, "ETH")] * 33)), grpc.StatusCode.INVALID_ARGUMENT, "at most 32", True),
    (dict(accept_chain_ids=[BASE], chain_id=BASE, asset="ETH"), grpc.StatusCode.INVALID_ARGUMENT, "accept_all", True),
    (dict(accept_all_assets=True, accept_chain_ids=[7]), grpc.StatusCode.NOT_FOUND, "accept_chain_ids[0] 7", True),
]


@pytest.mark.parametrize(("fields", "code", "message", "priced"), BAD_OPTIONS)
async def test_bad_options_are_refused_and_nothing_is_stored(fiat, shop, fields, code, message, priced):
    before = await count_payments(fiat, shop.merchant_id)
    request = spb.CreatePaymentRequest(**fields, **({"price": usd("30.00")} if priced else {"amount": "1000"}))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.payments.CreatePayment(request, metadata=shop.auth)
    assert err.value.code() == code, err.value.details()
    assert message in err.value.details(), err.value.details()
    assert await count_payments(fiat, shop.merchant_id) == before


async def test_a_gas_top_up_is_never_credited_to_the_native_option(fiat, shop, js):
    """A payment taking ETH and TUSD on one chain, paid in TUSD: the sweeper's native
    top-up into its address is gas, not an ETH payment, whether the ledger hears of the
    top-up before (write-ahead) or after the listener reports it."""
    async with grpc.aio.insecure_channel(fiat.target) as channel:
        sweeps = igrpc.SweepLedgerServiceStub(channel)
        for reported_first in (False, True):
            p = await create_with_options(shop, usd("30.00"), options=accepts((31337, "ETH"), (31337, "TUSD")))
            await pay_on(js, p, 30_000_000, chain_id=31337, token=TOKEN_ADDRESS)
            await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
            worker = f"topup-{p.payment_id[-6:]}"
            claimed = await sweeps.ClaimSweeps(
                ipb.ClaimSweepsRequest(
                    chain_id=31337, worker_id=worker, limit=500, lease_seconds=30, jobs_per_asset=True
                ),
                metadata=SWEEP_AUTH,
            )
            (job,) = [j for j in claimed.jobs if j.payment_id == p.payment_id]
            assert job.asset == "TUSD"
            topup = random_hash()
            if reported_first:  # a top-up the listener reported before the ledger recorded it
                await pay_on(js, p, 10**15, chain_id=31337, tx_hash=topup)
                await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_OVERPAID)
                # While it was unconfirmed the payment was DETECTED: its sweep lease was dropped.
                await sweeps.ClaimSweeps(
                    ipb.ClaimSweepsRequest(
                        chain_id=31337, worker_id=worker, limit=500, lease_seconds=30, jobs_per_asset=True
                    ),
                    metadata=SWEEP_AUTH,
                )
            await sweeps.RecordSweepTransaction(
                ipb.RecordSweepTransactionRequest(
                    worker_id=worker,
                    transaction=ipb.SweepTransaction(
                        payment_id=p.payment_id,
                        chain_id=31337,
                        asset="TUSD",
                        kind=ipb.SWEEP_TRANSACTION_KIND_GAS_TOPUP,
                        tx_hash=topup,
                        raw_tx=b"\x02\xf8",
                        from_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                        to_address=p.deposit_address,
                        amount=str(10**15),
                        gas_limit=21_000,
                        max_fee_per_gas="1",
                    ),
                ),
                metadata=SWEEP_AUTH,
            )
            if not reported_first:
                await pay_on(js, p, 10**15, chain_id=31337, tx_hash=topup)

            async def topup_recorded(payment_id=p.payment_id):
                got = await shop.get(payment_id)
                return got if any(t.kind == pb.TRANSFER_KIND_GAS_TOPUP for t in got.transfers) else None

            got = await eventually(topup_recorded)
            got = await wait_status(shop, p.payment_id, pb.PAYMENT_STATUS_CONFIRMED)
            (gas,) = [t for t in got.transfers if t.kind == pb.TRANSFER_KIND_GAS_TOPUP]
            assert not gas.credited and not gas.HasField("value")
            assert by_asset(got)[31337, "ETH"].amount_received == "0"
            await sweeps.UpdateSweepTransaction(
                ipb.UpdateSweepTransactionRequest(
                    tx_hash=topup, state=ipb.SWEEP_TRANSACTION_STATE_FAILED, error="test"
                ),
                metadata=SWEEP_AUTH,
            )
            await sweeps.ReleaseSweep(
                ipb.ReleaseSweepRequest(
                    payment_id=p.payment_id,
                    worker_id=worker,
                    retry_after_seconds=3600,
                    chain_id=31337,
                    asset="TUSD",
                ),
                metadata=SWEEP_AUTH,
            )


async def test_the_checkout_requotes_a_page_opened_after_the_lock_window(fiat, shop):
    """The customer comes back to the page after the lock window: the checkout asks
    for a fresh quote (RequoteCheckout), for every option at once; never silently."""
    from paymesh.ledger.v1 import checkout_ledger_service_pb2 as chpb
    from paymesh.ledger.v1 import checkout_ledger_service_pb2_grpc as chgrpc

    from tests.support.ledger import CHECKOUT_LEDGER_TOKEN

    p = await create_with_options(shop, usd("30.00"), options=accepts((31337, "ETH"), (31337, "TUSD")))
    async with grpc.aio.insecure_channel(fiat.target) as channel:
        checkout = chgrpc.CheckoutLedgerServiceStub(channel)
        auth = bearer(CHECKOUT_LEDGER_TOKEN)
        request = chpb.RequoteCheckoutRequest(checkout_token=p.checkout_token)
        kept = await checkout.RequoteCheckout(request, metadata=auth)
        assert not kept.requoted  # still in its window

        async def requoted():
            reply = await checkout.RequoteCheckout(request, metadata=auth)
            return reply if reply.requoted else None

        reply = await eventually(requoted, timeout=LOCK_WINDOW + 10)
        fresh = [o.quote.quoted_at.ToDatetime() for o in reply.checkout.options]
        assert all(t > p.options[0].quote.quoted_at.ToDatetime() for t in fresh)
        assert [o.asset for o in reply.checkout.options] == ["ETH", "TUSD"]


async def test_the_python_client_creates_a_priced_payment_with_options(fiat, shop):
    from paymesh_client import PaymeshClient

    async with PaymeshClient(fiat.target, shop.api_key) as client:
        payment = await client.create_priced_payment(
            currency="USD", price=Decimal("30.00"), options=[(31337, "ETH"), (31337, "TUSD")], description="Mug"
        )
        assert [o.amount_due for o in payment.options] == ["10000000000000000", "30000000"]
        assert payment.description == "Mug" and payment.checkout_token
        with pytest.raises(TypeError, match="never a float"):
            await client.create_priced_payment(currency="USD", price=30.0, options=[(31337, "ETH")])  # type: ignore[arg-type]
