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
from paymesh.ledger.v1 import payment_pb2 as pb
from paymesh.ledger.v1 import payment_service_pb2 as spb
from sqlalchemy import text

from services.ledger.app import LedgerApp
from tests.integration.conftest import ledger_settings
from tests.support.ledger import (
    TOKEN_ADDRESS,
    create_merchant,
    eventually,
    fresh_xpub,
    next_block,
    publish_chain,
    publish_head,
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
