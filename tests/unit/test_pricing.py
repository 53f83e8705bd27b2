"""Fiat prices into base units: exact, rounded up, strict about what is a price."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from eth_utils import function_signature_to_4byte_selector
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.domain import rate_sources as rs
from services.ledger.domain.pricing import (
    PricingError,
    amount_due,
    currency,
    deviation_bps,
    fiat_value,
    minimum_accepted,
    parse_price,
    parse_rate,
)

prices = st.builds(lambda cents: parse_price("USD", f"{cents // 100}.{cents % 100:02d}"), st.integers(1, 10**14))
rates = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal("1000000000"), places=8, allow_nan=False, allow_infinity=False
).filter(lambda d: d > 0)


@given(prices, rates, st.sampled_from([0, 6, 8, 18]))
def test_amount_due_covers_the_price_by_less_than_one_base_unit(price, rate, decimals):
    due = amount_due(price, rate, decimals)
    worth = lambda units: Fraction(units, 10**decimals) * Fraction(rate)  # noqa: E731
    assert worth(due) >= Fraction(price.amount)
    assert worth(due - 1) < Fraction(price.amount)


@given(st.integers(0, 10**30), st.sampled_from([6, 18]), rates)
def test_fiat_value_rounds_down_to_the_minor_unit(units, decimals, rate):
    value = fiat_value(units, decimals, rate, 2)
    exact = Fraction(units, 10**decimals) * Fraction(rate)
    assert Fraction(value) <= exact < Fraction(value) + Fraction(1, 100)
    assert value.as_tuple().exponent == -2


@given(st.integers(1, 10**30), st.integers(0, 10_000))
def test_tolerance(due, bps):
    least = minimum_accepted(due, bps)
    assert least * 10_000 >= due * (10_000 - bps) > (least - 1) * 10_000
    assert minimum_accepted(due, 0) == due


def test_examples():
    assert amount_due(parse_price("USD", "19.99"), Decimal("3000"), 18) == 6_663_333_333_333_334
    assert amount_due(parse_price("USD", "25"), Decimal("1"), 6) == 25_000_000
    assert amount_due(parse_price("JPY", "1500"), Decimal("150.25"), 6) == 9_983_362  # 9,983,361.06... rounded up
    assert minimum_accepted(1000, 50) == 995
    assert deviation_bps(Decimal("0.97"), Decimal("1")) == 300
    assert str(parse_price("EUR", "5.5")) == "5.50 EUR"


@pytest.mark.parametrize(
    ("code", "amount", "message"),
    [
        ("USD", "1e3", "plain decimal"),
        ("USD", "19.999", "has 3 decimals; USD has 2 decimals"),
        ("JPY", "10.5", "JPY has no decimals"),
        ("USD", "-1", "plain decimal"),
        ("USD", " 5", "plain decimal"),
        ("USD", "5 ", "plain decimal"),
        ("USD", "05", "plain decimal"),
        ("USD", "0", "greater than zero"),
        ("USD", "0.00", "greater than zero"),
        ("USD", "1.", "plain decimal"),
        ("USD", ".5", "plain decimal"),
        ("USD", "NaN", "plain decimal"),
        ("USD", "Infinity", "plain decimal"),
        ("USD", "١٢", "plain decimal"),
        ("USD", "1" * 19, "19 digits before the point"),
        ("usd", "1", "three capital letters"),
        ("US", "1", "three capital letters"),
        ("XYZ", "1", "not an ISO 4217 currency"),
        ("XAU", "1", "has no minor unit"),
        ("", "1", "three capital letters"),
    ],
)
def test_bad_prices_say_why(code, amount, message):
    with pytest.raises(PricingError) as err:
        parse_price(code, amount)
    assert message in str(err.value)


def test_currencies_have_their_iso_minor_units():
    assert [currency(c).minor_units for c in ("USD", "EUR", "JPY", "BHD", "CHF")] == [2, 2, 0, 3, 2]


@pytest.mark.parametrize("bad", ["0", "-1", "1e5", "", "abc", " 1", "0.0"])
def test_bad_rates(bad):
    with pytest.raises(PricingError):
        parse_rate(bad)


def _encode(*words: int) -> str:
    return "0x" + "".join(f"{w % 2**256:064x}" for w in words)


def test_chainlink_selectors_and_decoding():
    assert rs.LATEST_ROUND_DATA == "0x" + function_signature_to_4byte_selector("latestRoundData()").hex()
    assert rs.DECIMALS == "0x" + function_signature_to_4byte_selector("decimals()").hex()
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    updated = int((now - timedelta(seconds=30)).timestamp())
    data = rs.decode_latest_round_data(_encode(7, 312_055_000_000, updated, updated, 7))
    assert rs.decode_decimals(_encode(8)) == 8
    rate, at = rs.chainlink_rate(data, 8, now=now, max_age_seconds=3600)
    assert rate == Decimal("3120.55") and at == now - timedelta(seconds=30)


@pytest.mark.parametrize(
    ("words", "max_age", "message"),
    [
        ((7, 0, 1, 1, 7), 3600, "not a positive price"),
        ((7, -5, 1, 1, 7), 3600, "not a positive price"),
        ((7, 100, 1, 0, 7), 3600, "no updatedAt"),
        ((7, 100, 1, 1, 6), 3600, "answered in an earlier round"),
        ((7, 100, 1, 1, 7), 60, "more than its max age"),
    ],
)
def test_unusable_chainlink_rounds(words, max_age, message):
    with pytest.raises(rs.RateSourceError, match=message):
        rs.chainlink_rate(
            rs.decode_latest_round_data(_encode(*words)), 8, now=datetime.now(UTC), max_age_seconds=max_age
        )


@pytest.mark.parametrize("data", ["", "0x", "0x12", "nothex", "0x" + "zz" * 160])
def test_malformed_feed_answers(data):
    with pytest.raises(rs.RateSourceError):
        rs.decode_latest_round_data(data)


def test_coinbase_and_kraken_answers():
    body = {"data": {"amount": "3120.55", "base": "ETH", "currency": "USD"}}
    assert rs.coinbase_spot_rate(body, base="ETH", quote="USD") == Decimal("3120.55")
    with pytest.raises(rs.RateSourceError, match="not ETH-EUR"):
        rs.coinbase_spot_rate(body, base="ETH", quote="EUR")
    with pytest.raises(rs.RateSourceError, match="no data"):
        rs.coinbase_spot_rate({"errors": [{"id": "not_found"}]}, base="ETH", quote="USD")
    kraken = {"error": [], "result": {"XETHZUSD": {"a": ["1", "1", "1"], "c": ["3120.55000", "0.01000000"]}}}
    assert rs.kraken_ticker_rate(kraken, pair="ETHUSD") == Decimal("3120.55")
    with pytest.raises(rs.RateSourceError, match="Unknown asset pair"):
        rs.kraken_ticker_rate({"error": ["EQuery:Unknown asset pair"]}, pair="ETHXYZ")
    for bad in [
        {"error": [], "result": {}},
        {"error": [], "result": {"X": {"c": []}}},
        [],
        {"error": [], "result": {"X": {"c": ["-1", "1"]}}},
    ]:
        with pytest.raises(rs.RateSourceError):
            rs.kraken_ticker_rate(bad, pair="ETHUSD")
