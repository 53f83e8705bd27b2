"""The ledger's rate sources on real components: Chainlink feeds on anvil, the
tickers' answers over HTTP from a local server, and the refresher sharing rates
between two replicas through NATS JetStream KV.

The Chainlink feeds here are tools/contracts/TestPriceFeed.sol, a STAND-IN for a
Chainlink AggregatorV3 feed: it answers `decimals()` and `latestRoundData()` as a
real feed does, but the test sets its rounds (fresh, stale, non-positive, carried
over). The ticker bodies are tests/unit/fixtures/rates/ (their README says where
the formats come from). Every wait is bounded; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio

from services.common.chains import Chains, load_chains
from services.common.errors import FailedPrecondition, Reason, Unavailable
from services.ledger.adapters.rate_sources import build_sources
from services.ledger.adapters.rate_store import RATES_BUCKET, rate_key
from services.ledger.domain.rate_book import RateBook, decode_writer
from services.ledger.domain.rate_sources import RateSourceError
from services.ledger.rate_refresher import LEASE_BUCKET, LEASE_KEY, RateRefresher, start_rates
from services.ledger.rates_config import RatesFile, parse_rates, rule_of
from services.ledger.settings import LedgerSettings
from tests.support.ledger import eventually, write_chains_file
from tools import devstack
from tools.price_feed import deploy_price_feed, set_answer, set_round

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "rates"


@pytest.fixture(scope="module")
def chains(anvil, tmp_path_factory) -> Chains:
    return load_chains(write_chains_file(tmp_path_factory.mktemp("rates") / "chains.yaml", rpc_url=anvil.http_url))


def config(chains: Chains, *rates: dict[str, Any], refresh_seconds: float = 10) -> RatesFile:
    return parse_rates({"refresh_seconds": refresh_seconds, "rates": list(rates)}, chains, env={})


def chainlink(feed: str, asset: str = "ETH", max_age: float = 3600) -> dict[str, Any]:
    return {
        "asset": asset,
        "currency": "USD",
        "source": "chainlink",
        "chain_id": 31337,
        "feed": feed,
        "max_age_seconds": max_age,
    }


async def feed(anvil, answer: str, description: str = "ETH / USD") -> str:
    return await asyncio.to_thread(deploy_price_feed, anvil.http_url, Decimal(answer), 8, description)


async def block_time(anvil, receipt: dict[str, Any]) -> int:
    block = await asyncio.to_thread(
        devstack.rpc_call, anvil.http_url, "eth_getBlockByNumber", [receipt["blockNumber"], False]
    )
    return int(block["timestamp"], 16)


def refresher_for(cfg: RatesFile, chains: Chains) -> RateRefresher:
    book = RateBook([rule_of(e) for e in cfg.rates], cfg.lock_window)
    return RateRefresher(book, build_sources(cfg, chains), refresh_seconds=cfg.refresh_seconds)


def now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------- Chainlink (stand-in feed on anvil)


async def test_a_fresh_round_is_the_exact_rate_at_its_updated_at(anvil, chains):
    address = await feed(anvil, "3000")
    receipt = await asyncio.to_thread(set_answer, anvil.http_url, address, Decimal("3120.55"))
    updated_at = await block_time(anvil, receipt)
    refresher = refresher_for(config(chains, chainlink(address)), chains)
    try:
        await refresher.refresh_once()
        rate = refresher.book.rate("ETH", "USD", now())
    finally:
        await refresher.sources.aclose()
    assert rate.value == Decimal("3120.55") and isinstance(rate.value, Decimal)
    assert rate.source == f"chainlink 31337:{address}"
    assert rate.observed_at == datetime.fromtimestamp(updated_at, UTC)
    assert (rate.asset, rate.currency) == ("ETH", "USD")


async def test_a_stale_round_is_refused_naming_pair_and_max_age(anvil, chains):
    address = await feed(anvil, "3000")
    receipt = await asyncio.to_thread(set_answer, anvil.http_url, address, Decimal("3000"))
    old = await block_time(anvil, receipt) - 4000
    await asyncio.to_thread(
        set_round, anvil.http_url, address, round_id=9, answer=Decimal("3001"), updated_at=old, answered_in_round=9
    )
    refresher = refresher_for(config(chains, chainlink(address, max_age=3600)), chains)
    try:
        await refresher.refresh_once()
        with pytest.raises(Unavailable) as caught:
            refresher.book.rate("ETH", "USD", now())
    finally:
        await refresher.sources.aclose()
    message = caught.value.message
    assert message.startswith(f"no usable ETH/USD rate: chainlink 31337:{address}: the feed was last updated")
    assert "more than its max age of 3600 s" in message


@pytest.mark.parametrize(
    ("answer", "round_id", "answered_in_round", "expected"),
    [
        ("0", 3, 3, "not a positive price"),
        ("-1", 3, 3, "not a positive price"),
        ("3000", 7, 6, r"was answered in an earlier round \(6\)"),
    ],
)
async def test_unusable_rounds_are_refused(anvil, chains, answer, round_id, answered_in_round, expected):
    address = await feed(anvil, "3000")
    receipt = await asyncio.to_thread(set_answer, anvil.http_url, address, Decimal("3000"))
    at = await block_time(anvil, receipt)
    await asyncio.to_thread(
        set_round,
        anvil.http_url,
        address,
        round_id=round_id,
        answer=Decimal(answer),
        updated_at=at,
        answered_in_round=answered_in_round,
    )
    refresher = refresher_for(config(chains, chainlink(address)), chains)
    try:
        source = refresher.sources.by_pair[("ETH", "USD")]
        with pytest.raises(RateSourceError, match=expected):
            await source.fetch()
        await refresher.refresh_once()
        with pytest.raises(Unavailable, match=f"no usable ETH/USD rate: chainlink 31337:{address}: .*{expected}"):
            refresher.book.rate("ETH", "USD", now())
    finally:
        await refresher.sources.aclose()


async def test_an_address_that_is_no_feed_says_so(anvil, chains):
    nobody = "0x000000000000000000000000000000000000dEaD"
    refresher = refresher_for(config(chains, chainlink(nobody)), chains)
    try:
        with pytest.raises(RateSourceError, match="no contract answers decimals"):
            await refresher.sources.by_pair[("ETH", "USD")].fetch()
    finally:
        await refresher.sources.aclose()


# ---------------------------------------------------------------------- tickers over HTTP


@dataclass
class TickerServer:
    """A loopback HTTP server answering GETs from `routes` (path with query -> (status,
    body)); "hang" holds the request unanswered until the server stops."""

    routes: dict[str, tuple[int, bytes] | str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: Any = None

    def start(self) -> TickerServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                owner.requests.append(self.path)
                route = owner.routes.get(self.path, (404, b'{"errors":[{"id":"not_found","message":"Not found"}]}'))
                if route == "hang":
                    owner._release.wait(timeout=60)  # bounded: the server stops long before
                    return
                assert isinstance(route, tuple)
                status, body = route
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def tickers() -> Iterator[TickerServer]:
    server = TickerServer().start()
    try:
        yield server
    finally:
        server.stop()


COINBASE_PATH = "/v2/prices/ETH-USD/spot"
KRAKEN_PATH = "/0/public/Ticker?pair=ETHUSD"


def ticker_entry(kind: str, url: str) -> dict[str, Any]:
    return {"asset": "ETH", "currency": "USD", "source": kind, "url": url, "max_age_seconds": 120}


@pytest.mark.parametrize(
    ("kind", "path", "body"),
    [("coinbase", COINBASE_PATH, "coinbase_spot_eth_usd.json"), ("kraken", KRAKEN_PATH, "kraken_ticker_ethusd.json")],
)
async def test_a_ticker_answer_is_the_exact_rate(chains, tickers, kind, path, body):
    tickers.routes[path] = (200, (FIXTURES / body).read_bytes())
    refresher = refresher_for(config(chains, ticker_entry(kind, tickers.url)), chains)
    try:
        before = now()
        await refresher.refresh_once()
        rate = refresher.book.rate("ETH", "USD", now())
    finally:
        await refresher.sources.aclose()
    assert tickers.requests == [path]
    assert rate.value == Decimal("3120.55") and rate.source == kind
    assert rate.observed_at >= before  # the answer has no time: when it arrived


@pytest.mark.parametrize(
    ("kind", "path", "status", "body", "expected"),
    [
        (
            "coinbase",
            COINBASE_PATH,
            404,
            (FIXTURES / "coinbase_spot_not_found.json").read_bytes(),
            "answered HTTP 404: Invalid base currency (not_found)",
        ),
        (
            "kraken",
            KRAKEN_PATH,
            200,
            (FIXTURES / "kraken_ticker_unknown_pair.json").read_bytes(),
            "kraken: EQuery:Unknown asset pair",
        ),
        ("coinbase", COINBASE_PATH, 500, b"<html>Internal Server Error</html>", "answered HTTP 500 with no JSON"),
        ("kraken", KRAKEN_PATH, 500, b'{"error":["EService:Unavailable"]}', "answered HTTP 500 (try again later)"),
    ],
)
async def test_ticker_errors_are_refusals_naming_the_pair(chains, tickers, kind, path, status, body, expected):
    tickers.routes[path] = (status, body)
    refresher = refresher_for(config(chains, ticker_entry(kind, tickers.url)), chains)
    try:
        await refresher.refresh_once()
        with pytest.raises(Unavailable) as caught:
            refresher.book.rate("ETH", "USD", now())
    finally:
        await refresher.sources.aclose()
    assert caught.value.message.startswith(f"no usable ETH/USD rate: {kind}: ")
    assert expected in caught.value.message


@pytest.mark.parametrize(("kind", "path"), [("coinbase", COINBASE_PATH), ("kraken", KRAKEN_PATH)])
async def test_a_ticker_that_never_answers_is_cut_off_by_the_client_timeout(chains, tickers, kind, path):
    tickers.routes[path] = "hang"
    cfg = config(chains, ticker_entry(kind, tickers.url))
    sources = build_sources(cfg, chains)
    try:
        async with asyncio.timeout(30):  # the test's own bound; the client gives up at 5 s
            with pytest.raises(RateSourceError, match=rf"^{kind}: .*(within 5 s|timed out)"):
                await sources.by_pair[("ETH", "USD")].fetch()
    finally:
        await sources.aclose()


# ---------------------------------------------------------------------- fixed, guarded


async def test_a_fixed_rate_is_quoted_while_its_guard_holds_the_peg(anvil, chains):
    guard = await feed(anvil, "1.00", "TUSD / USD")
    entry = {
        "asset": "TUSD",
        "currency": "USD",
        "source": "fixed",
        "guard": chainlink(guard, asset="TUSD"),
        "max_deviation_bps": 200,
    }
    refresher = refresher_for(config(chains, entry), chains)
    try:
        await refresher.refresh_once()
        rate = refresher.book.rate("TUSD", "USD", now())
        assert rate.value == Decimal(1) and rate.source == f"fixed (guarded by chainlink 31337:{guard})"

        await asyncio.to_thread(set_answer, anvil.http_url, guard, Decimal("0.95"))
        await refresher.refresh_once()
        with pytest.raises(FailedPrecondition) as caught:
            refresher.book.rate("TUSD", "USD", now())
        assert caught.value.reason == Reason.ASSET_DEPEGGED
        assert "TUSD" in caught.value.message and "0.95" in caught.value.message
        assert "500 bps" in caught.value.message and "200 bps" in caught.value.message

        await asyncio.to_thread(set_answer, anvil.http_url, guard, Decimal("0.99"))  # 100 bps: within range
        await refresher.refresh_once()
        assert refresher.book.rate("TUSD", "USD", now()).value == Decimal(1)
    finally:
        await refresher.sources.aclose()


# ---------------------------------------------------------------------- two replicas sharing NATS


@dataclass
class Replica:
    name: str
    nc: Any
    book: RateBook
    tasks: list[asyncio.Task]
    stop: asyncio.Event

    async def kill(self) -> None:
        """As a crash: the connection drops first, so the lease is not released and must expire."""
        await self.nc.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task

    async def shutdown(self) -> None:
        self.stop.set()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=10)
        if not self.nc.is_closed:
            await self.nc.close()


@pytest_asyncio.fixture(loop_scope="session")
async def private_nats(nats_factory) -> AsyncIterator[devstack.Nats]:
    yield nats_factory()


async def test_one_replica_writes_the_other_serves_the_same_rate_and_takes_over(anvil, chains, private_nats, tmp_path):
    address = await feed(anvil, "3000")
    cfg = config(chains, chainlink(address), refresh_seconds=0.2)
    settings = LedgerSettings(rates_file=tmp_path / "unused.yaml", nats_url=private_nats.url)
    lease_ttl = 2.0
    replicas: list[Replica] = []

    async def start(name: str) -> Replica:
        nc = await nats.connect(private_nats.url, name=f"rates-{name}")
        stop = asyncio.Event()
        book, tasks = await start_rates(settings, chains, nc, stop, holder=name, lease_ttl=lease_ttl, config=cfg)
        assert book is not None
        replica = Replica(name, nc, book, tasks, stop)
        replicas.append(replica)
        return replica

    observer = await nats.connect(private_nats.url, name="rates-observer")
    try:
        js = observer.jetstream()
        a = await start("replica-a")
        b = await start("replica-b")
        leases = await js.key_value(LEASE_BUCKET)
        rates = await js.key_value(RATES_BUCKET)
        assert (await leases.get(LEASE_KEY)).value == b"replica-a"

        async def written_by() -> str:
            return decode_writer((await rates.get(rate_key("ETH", "USD"))).value or b"")

        # Both quote at once (start_rates ran the first round / read the bucket), the same rate.
        first = a.book.rate("ETH", "USD", now())
        assert b.book.rate("ETH", "USD", now()) == first and first.value == Decimal("3000")

        # A new answer reaches B only through A's writes to the bucket.
        await asyncio.to_thread(set_answer, anvil.http_url, address, Decimal("3120.55"))

        async def b_has(value: str) -> bool:
            with contextlib.suppress(Unavailable):
                return b.book.rate("ETH", "USD", now()).value == Decimal(value)
            return False

        await eventually(lambda: b_has("3120.55"), timeout=15)
        assert b.book.rate("ETH", "USD", now()) == a.book.rate("ETH", "USD", now())
        for _ in range(3):  # several rounds later, still only A writes
            assert await written_by() == "replica-a"
            await asyncio.sleep(0.2)
        assert (await leases.get(LEASE_KEY)).value == b"replica-a"

        # A dies without releasing its lease: B takes it once it expires and fetches itself.
        await a.kill()

        async def b_writes() -> bool:
            with contextlib.suppress(Exception):
                return (await leases.get(LEASE_KEY)).value == b"replica-b" and await written_by() == "replica-b"
            return False

        await eventually(b_writes, timeout=lease_ttl * 5 + 10)
        await asyncio.to_thread(set_answer, anvil.http_url, address, Decimal("2999.99"))
        await eventually(lambda: b_has("2999.99"), timeout=15)
    finally:
        for replica in replicas:
            if not replica.nc.is_closed:
                await replica.shutdown()
        await observer.close()


async def test_start_rates_returns_no_book_without_a_rates_file(chains, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default path, rates.yaml, is absent here
    assert await start_rates(LedgerSettings(), chains, None, asyncio.Event()) == (None, [])


async def test_start_rates_without_nats_quotes_at_once(anvil, chains, tmp_path):
    address = await feed(anvil, "2500.5")
    path = tmp_path / "rates.yaml"
    path.write_text(json.dumps({"refresh_seconds": 1, "rates": [chainlink(address)]}))
    stop = asyncio.Event()
    book, tasks = await start_rates(LedgerSettings(rates_file=path), chains, None, stop)
    try:
        assert book is not None and book.rate("ETH", "USD", now()).value == Decimal("2500.5")
        assert book.pairs() == [("ETH", "USD")] and book.currencies_for("eth") == ["USD"]
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
