"""rates.yaml loading: every pair checked against chains.yaml, errors name the file,
the field and the pair; `${VAR:-default}` expanded as in chains.yaml; no floats
where money is written. And start_rates' rule for an absent file."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address

from services.common.chains import load_chains
from services.ledger.domain.rate_book import DEFAULT_LOCK_WINDOW, DEFAULT_REFRESH
from services.ledger.rate_refresher import load_rates_file, start_rates
from services.ledger.rates_config import (
    ChainlinkRate,
    CoinbaseRate,
    FixedRate,
    KrakenRate,
    RatesConfigError,
    load_rates,
    parse_rates,
    rule_of,
)
from services.ledger.settings import LedgerSettings

REPO = Path(__file__).resolve().parents[2]
FEED = "0x5f4ec3df9cbd43714fe2740f5e3616155c5b8419"  # mainnet ETH/USD, lower case on purpose
CHECKSUMMED = to_checksum_address(FEED)
# The checksummed form with the case of its first letter flipped: a wrong checksum.
_FIRST = next(i for i, c in enumerate(CHECKSUMMED) if i > 1 and c.isalpha())
BAD_CHECKSUM = CHECKSUMMED[:_FIRST] + CHECKSUMMED[_FIRST].swapcase() + CHECKSUMMED[_FIRST + 1 :]
CHAINS = load_chains(REPO / "chains.yaml", env={})

GOOD: dict[str, Any] = {
    "lock_window_seconds": 600,
    "refresh_seconds": 5,
    "rates": [
        {
            "asset": "ETH",
            "currency": "USD",
            "source": "chainlink",
            "chain_id": 31337,
            "feed": FEED,
            "max_age_seconds": 3600,
        },
        {
            "asset": "ETH",
            "currency": "EUR",
            "source": "coinbase",
            "url": "${PAYMESH_COINBASE_URL:-https://api.coinbase.com}",
            "max_age_seconds": 120,
        },
        {"asset": "eth", "currency": "GBP", "source": "kraken", "max_age_seconds": 120},
        {
            "asset": "TUSD",
            "currency": "USD",
            "source": "fixed",
            "guard": {"source": "chainlink", "chain_id": 31337, "feed": FEED, "max_age_seconds": 86400},
            "max_deviation_bps": 200,
        },
        {"asset": "TUSD", "currency": "EUR", "source": "fixed", "value": "0.92"},
    ],
}


def parse(raw: Any, env: dict[str, str] | None = None):
    return parse_rates(raw, CHAINS, path="rates.yaml", env=env or {})


def test_the_repository_rates_file_loads():
    parsed = load_rates(REPO / "rates.yaml", CHAINS, env={})
    assert {(r.asset, r.currency, r.source) for r in parsed.rates} == {
        ("ETH", "USD", "chainlink"),
        ("TUSD", "USD", "fixed"),
    }
    tusd = parsed.rates[1]
    assert isinstance(tusd, FixedRate) and tusd.guard is not None and tusd.max_deviation_bps == 200
    moved = load_rates(REPO / "rates.yaml", CHAINS, env={"PAYMESH_ANVIL_ETH_USD_FEED": FEED})
    assert isinstance(moved.rates[0], ChainlinkRate) and moved.rates[0].feed == CHECKSUMMED


def test_a_good_file_and_its_defaults():
    parsed = parse(GOOD)
    assert parsed.lock_window == timedelta(seconds=600) and parsed.refresh_seconds == 5
    eth_usd, eth_eur, eth_gbp, tusd_usd, tusd_eur = parsed.rates
    assert isinstance(eth_usd, ChainlinkRate) and eth_usd.describe() == f"chainlink 31337:{eth_usd.feed}"
    assert eth_usd.feed == CHECKSUMMED  # checksummed
    assert isinstance(eth_eur, CoinbaseRate) and eth_eur.url == "https://api.coinbase.com"
    assert (
        isinstance(eth_gbp, KrakenRate) and eth_gbp.url == "https://api.kraken.com" and eth_gbp.kraken_pair == "ETHGBP"
    )
    assert isinstance(tusd_usd, FixedRate) and tusd_usd.value == Decimal(1)
    assert tusd_usd.guard is not None and (tusd_usd.guard.asset, tusd_usd.guard.currency) == ("TUSD", "USD")
    assert isinstance(tusd_eur, FixedRate) and tusd_eur.value == Decimal("0.92") and tusd_eur.describe() == "fixed"
    rule = rule_of(tusd_usd)
    assert rule.fixed_value == Decimal(1) and rule.guard_max_age == timedelta(days=1) and rule.max_deviation_bps == 200
    assert rule.quoted_source() == f"fixed (guarded by chainlink 31337:{eth_usd.feed})"
    empty = parse({})
    assert empty.rates == () and empty.lock_window == DEFAULT_LOCK_WINDOW
    assert empty.refresh_seconds == DEFAULT_REFRESH.total_seconds()


def test_urls_come_from_the_environment():
    parsed = parse(GOOD, env={"PAYMESH_COINBASE_URL": "http://127.0.0.1:8081/"})
    assert isinstance(parsed.rates[1], CoinbaseRate) and parsed.rates[1].url == "http://127.0.0.1:8081"


def _set(path: tuple[Any, ...], value: Any):
    def change(raw: dict[str, Any]) -> None:
        node: Any = raw
        for part in path[:-1]:
            node = node[part]
        if value is _DROP:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return change


_DROP = object()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set(("rates", 0, "source"), "oracle"), "rates[0] (ETH/USD): unknown source 'oracle'; one of chainlink"),
        (_set(("rates", 0, "source"), _DROP), "rates[0] (ETH/USD): no source"),
        (_set(("rates", 0, "feed"), "0x1234"), "rates[0].feed (ETH/USD): not an EVM address"),
        (
            _set(("rates", 0, "feed"), BAD_CHECKSUM),
            f"rates[0].feed (ETH/USD): not an EVM address: '{BAD_CHECKSUM}' has a wrong EIP-55 checksum",
        ),
        (_set(("rates", 3, "guard", "feed"), "nope"), "rates[3].guard.feed (TUSD/USD): not an EVM address"),
        (_set(("rates", 0, "chain_id"), 1), "rates[0].chain_id (ETH/USD): chain 1 is not in chains.yaml"),
        (_set(("rates", 3, "guard", "chain_id"), 8453), "rates[3].guard.chain_id (TUSD/USD): chain 8453 is not"),
        (
            _set(("rates", 0, "max_age_seconds"), 0),
            "rates[0].max_age_seconds (ETH/USD): Input should be greater than 0",
        ),
        (
            _set(("rates", 1, "max_age_seconds"), -5),
            "rates[1].max_age_seconds (ETH/EUR): Input should be greater than 0",
        ),
        (_set(("rates", 1, "max_age_seconds"), _DROP), "rates[1].max_age_seconds (ETH/EUR): Field required"),
        (
            _set(("rates", 1, "max_age_seconds"), 2),
            "rates[1].max_age_seconds (ETH/EUR): 2 s is shorter than refresh_seconds",
        ),
        (_set(("rates", 0, "currency"), "XYZ"), "rates[0].currency (ETH/XYZ): currency XYZ is not an ISO 4217"),
        (_set(("rates", 0, "currency"), "usd"), "rates[0].currency (ETH/usd): currency must be an ISO 4217 code"),
        (_set(("rates", 1, "currency"), "USD"), "rates[1] (ETH/USD): the pair appears more than once (also rates[0])"),
        (_set(("rates", 2, "currency"), "USD"), "rates[2] (eth/USD): the pair appears more than once"),
        (_set(("rates", 0, "asset"), "DOGE"), "rates[0].asset (DOGE/USD): DOGE is no asset of chains.yaml"),
        (_set(("rates", 1, "url"), "ftp://x"), "rates[1].url (ETH/EUR): must be an http(s):// URL"),
        (_set(("rates", 1, "url"), "${NOT_SET_ANYWHERE}"), "rates[1].url: environment variable NOT_SET_ANYWHERE"),
        (_set(("rates", 4, "value"), 0.92), 'rates[4].value (TUSD/EUR): write the value as a string such as "1"'),
        (_set(("rates", 4, "value"), "-1"), "rates[4].value (TUSD/EUR): rate must be a plain positive decimal"),
        (_set(("rates", 3, "max_deviation_bps"), _DROP), "rates[3] (TUSD/USD): a guard needs max_deviation_bps"),
        (_set(("rates", 4, "max_deviation_bps"), 100), "rates[4] (TUSD/EUR): max_deviation_bps needs a guard"),
        (_set(("rates", 3, "max_deviation_bps"), 0), "rates[3].max_deviation_bps (TUSD/USD): Input should be greater"),
        (_set(("rates", 3, "guard", "currency"), "EUR"), "rates[3] (TUSD/USD): guard prices TUSD/EUR; it must price"),
        (_set(("rates", 3, "guard", "source"), "fixed"), "rates[3].guard (TUSD/USD): unknown source 'fixed'"),
        (_set(("rates", 0, "url"), "http://x"), "rates[0].url (ETH/USD): Extra inputs are not permitted"),
        (_set(("refresh_seconds",), 0), "refresh_seconds: Input should be greater than 0"),
        (_set(("lock_window_seconds",), -1), "lock_window_seconds: Input should be greater than 0"),
        (_set(("rates",), "ETH"), "rates: Input should be a valid tuple"),
    ],
)
def test_errors_name_file_field_and_pair(change, message):
    raw = copy.deepcopy(GOOD)
    change(raw)
    with pytest.raises(RatesConfigError) as caught:
        parse(raw)
    assert str(caught.value).startswith("rates.yaml: ")
    assert message in str(caught.value), str(caught.value)


def test_file_errors(tmp_path):
    with pytest.raises(RatesConfigError, match="file not found"):
        load_rates(tmp_path / "rates.yaml", CHAINS)
    bad = tmp_path / "bad.yaml"
    bad.write_text("rates: [\n")
    with pytest.raises(RatesConfigError, match=r"bad.yaml: not valid YAML"):
        load_rates(bad, CHAINS)
    bad.write_text("- 1\n")
    with pytest.raises(RatesConfigError, match="expected a mapping"):
        load_rates(bad, CHAINS)


def test_an_absent_default_file_means_no_rates_but_an_explicit_path_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default path, rates.yaml, is absent here
    assert load_rates_file(LedgerSettings(), CHAINS) is None
    assert asyncio.run(start_rates(LedgerSettings(), CHAINS, None, asyncio.Event())) == (None, [])
    with pytest.raises(RatesConfigError, match="file not found"):
        load_rates_file(LedgerSettings(rates_file=tmp_path / "missing.yaml"), CHAINS)
    monkeypatch.setenv("PAYMESH_RATES_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(RatesConfigError, match="file not found"):
        load_rates_file(LedgerSettings(), CHAINS)


@pytest.mark.parametrize(
    ("rates", "chains", "env"),
    [
        (
            "deploy/k8s/base/config/rates.yaml",
            "deploy/k8s/base/config/chains.yaml",
            {"PAYMESH_ETHEREUM_RPC_URL": "https://x"},
        ),
        ("deploy/k8s/overlays/dev/rates-anvil.yaml", "deploy/k8s/overlays/dev/chains-anvil.yaml", {}),
    ],
)
def test_the_deployed_rates_files_load_against_their_chains(rates, chains, env):
    parsed = load_rates(REPO / rates, load_chains(REPO / chains, env=env), env=env)
    assert parsed.rates and any(isinstance(r, FixedRate) and r.guard is not None for r in parsed.rates)
