"""The RateBook's rules, pure (no network, an explicit `now`): fresh or refused,
the refusal naming the pair and the source's last error, the depeg guard, pairs
not configured, readings that never move a quote back in time, and the exact JSON
form replicas share."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import FailedPrecondition, Reason, Unavailable
from services.ledger.domain.pricing import Rate
from services.ledger.domain.rate_book import (
    DEFAULT_LOCK_WINDOW,
    PairReading,
    PairRule,
    RateBook,
    ReadingFormatError,
    decode_reading,
    decode_writer,
    encode_reading,
)

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
FEED = "chainlink 31337:0x5FbDB2315678afecb367f032d93F642f64180aa3"
GUARD = "chainlink 31337:0x9032b596EDbc3386a87025B23C39eBFaBaB63aD4"
ETH_USD = PairRule("ETH", "USD", FEED, timedelta(seconds=3600))
ETH_EUR = PairRule("ETH", "EUR", "coinbase", timedelta(seconds=120))
TUSD_USD = PairRule(
    "TUSD",
    "USD",
    f"fixed (guarded by {GUARD})",
    timedelta(seconds=3600),
    fixed_value=Decimal(1),
    guard_source=GUARD,
    guard_max_age=timedelta(seconds=3600),
    max_deviation_bps=200,
)
TUSD_EUR = PairRule("TUSD", "EUR", "fixed", None, fixed_value=Decimal("0.92"))


def book() -> RateBook:
    return RateBook([ETH_USD, ETH_EUR, TUSD_USD, TUSD_EUR])


def rate(value: str, at: datetime, asset: str = "ETH", currency: str = "USD", source: str = FEED) -> Rate:
    return Rate(asset, currency, Decimal(value), source, at)


def test_a_fresh_rate_is_quoted_as_is_and_refused_once_older_than_max_age():
    b = book()
    held = rate("3120.55", T0)
    assert b.apply("ETH", "USD", PairReading(held))
    assert b.rate("ETH", "USD", T0 + timedelta(seconds=3600)) is held
    assert b.rate("eth", "usd", T0) is held  # symbols without regard to case
    # No refresh since: the same rate is refused once it is older than the max age.
    with pytest.raises(Unavailable) as caught:
        b.rate("ETH", "USD", T0 + timedelta(seconds=3601))
    assert caught.value.message == (
        f"no usable ETH/USD rate: the latest, 3120.55 from {FEED}, was observed 3601 s ago, "
        "more than its max age of 3600 s"
    )
    assert b.lock_window == DEFAULT_LOCK_WINDOW


def test_the_refusal_quotes_the_sources_last_error():
    b = book()
    with pytest.raises(Unavailable, match=r"^no usable ETH/USD rate: chainlink .*: no rate fetched yet"):
        b.rate("ETH", "USD", T0)
    error = f"{FEED}: the feed was last updated 4000 s ago, more than its max age of 3600 s"
    b.apply("ETH", "USD", PairReading(None, error, T0))
    with pytest.raises(Unavailable) as caught:
        b.rate("ETH", "USD", T0)
    assert caught.value.message == f"no usable ETH/USD rate: {error}"
    assert caught.value.reason == Reason.RATE_UNAVAILABLE
    # A failed fetch keeps the last good rate while it is young enough ...
    b.apply("ETH", "USD", PairReading(rate("3000", T0)))
    b.apply("ETH", "USD", PairReading(None, "coinbase: no answer within 5 s", T0 + timedelta(seconds=10)))
    assert b.rate("ETH", "USD", T0 + timedelta(seconds=10)).value == Decimal("3000")
    assert b.reading("ETH", "USD").error == "coinbase: no answer within 5 s"
    # ... and the refusal names both once it is not.
    with pytest.raises(Unavailable) as caught:
        b.rate("ETH", "USD", T0 + timedelta(hours=2))
    assert "coinbase: no answer within 5 s (the latest, 3000 from" in caught.value.message


def test_a_pair_without_a_source_is_not_configured_and_the_message_lists_those_that_are():
    with pytest.raises(FailedPrecondition) as caught:
        book().rate("ETH", "JPY", T0)
    assert caught.value.reason == Reason.RATE_NOT_CONFIGURED
    assert "ETH/JPY" in caught.value.message
    assert "ETH/USD, ETH/EUR, TUSD/USD, TUSD/EUR" in caught.value.message
    with pytest.raises(FailedPrecondition, match=r"configures: none"):
        RateBook([]).rate("ETH", "USD", T0)


def test_pairs_and_currencies():
    b = book()
    assert b.pairs() == [("ETH", "USD"), ("ETH", "EUR"), ("TUSD", "USD"), ("TUSD", "EUR")]
    assert b.currencies_for("eth") == ["USD", "EUR"] and b.currencies_for("DOGE") == []
    with pytest.raises(ValueError, match="twice"):
        RateBook([ETH_USD, ETH_USD])
    assert not b.apply("DOGE", "USD", PairReading(rate("1", T0, "DOGE")))  # not configured here: ignored


def test_an_unguarded_fixed_rate_is_always_its_value_now():
    quoted = book().rate("TUSD", "EUR", T0)
    assert quoted == Rate("TUSD", "EUR", Decimal("0.92"), "fixed", T0)


def test_a_guarded_fixed_rate_holds_while_the_guard_holds_the_peg():
    b = book()
    with pytest.raises(Unavailable, match=r"no usable TUSD/USD rate: it is fixed at 1, but its depeg guard"):
        b.rate("TUSD", "USD", T0)
    b.apply("TUSD", "USD", PairReading(rate("0.99", T0, "TUSD", source=GUARD)))  # 100 bps: fine
    quoted = b.rate("TUSD", "USD", T0 + timedelta(seconds=5))
    assert quoted == Rate("TUSD", "USD", Decimal(1), f"fixed (guarded by {GUARD})", T0)
    b.apply("TUSD", "USD", PairReading(rate("1.02", T0 + timedelta(seconds=1), "TUSD", source=GUARD)))  # 200: fine
    assert b.rate("TUSD", "USD", T0 + timedelta(seconds=5)).value == Decimal(1)
    b.apply("TUSD", "USD", PairReading(rate("0.95", T0 + timedelta(seconds=2), "TUSD", source=GUARD)))
    with pytest.raises(FailedPrecondition) as caught:
        b.rate("TUSD", "USD", T0 + timedelta(seconds=5))
    assert caught.value.reason == Reason.ASSET_DEPEGGED
    message = caught.value.message
    assert message.startswith("TUSD looks depegged: TUSD/USD is fixed at 1 but its guard")
    assert "prices TUSD at 0.95 USD, 500 bps away (more than the 200 bps allowed)" in message
    # A stale guard confirms nothing: refused as unavailable, naming the guard.
    with pytest.raises(Unavailable, match=r"depeg guard has no fresh price: the latest, 0.95 from chainlink"):
        b.rate("TUSD", "USD", T0 + timedelta(hours=2))


def test_a_reading_never_moves_a_quote_back_in_time():
    b = book()
    b.apply("ETH", "USD", PairReading(rate("3100", T0 + timedelta(seconds=20))))
    b.apply("ETH", "USD", PairReading(rate("3000", T0)))  # late, older: the rate stays
    assert b.rate("ETH", "USD", T0 + timedelta(seconds=30)).value == Decimal("3100")
    b.apply("ETH", "USD", PairReading(rate("3200", T0 + timedelta(seconds=20))))  # as recent: taken
    assert b.rate("ETH", "USD", T0 + timedelta(seconds=30)).value == Decimal("3200")
    assert b.age_seconds("ETH", "USD", T0 + timedelta(seconds=30)) == 10
    assert b.age_seconds("ETH", "EUR", T0) is None and b.age_seconds("TUSD", "EUR", T0) == 0


@given(
    st.decimals(min_value=Decimal("0.000000000001"), max_value=Decimal("10") ** 20, places=12, allow_nan=False),
    st.text(max_size=80),
)
def test_the_shared_form_round_trips_exactly(value, error):
    reading = PairReading(Rate("ETH", "USD", value, FEED, T0), error, T0 if error else None)
    data = encode_reading(ETH_USD, reading, writer="replica-a")
    body = json.loads(data)
    assert isinstance(body["rate"]["value"], str) and "E" not in body["rate"]["value"]  # a plain decimal string
    assert decode_reading(data) == ("ETH", "USD", reading)
    assert decode_writer(data) == "replica-a"


def test_the_shared_form_of_a_guarded_fixed_pair_has_the_guard_and_its_deviation():
    guard = rate("0.9950", T0, "TUSD", source=GUARD)
    data = encode_reading(TUSD_USD, PairReading(guard))
    body = json.loads(data)
    assert body["rate"] == {"value": "1", "source": f"fixed (guarded by {GUARD})", "observed_at": T0.isoformat()}
    assert body["guard"]["value"] == "0.9950" and body["guard_deviation_bps"] == 50
    assert decode_reading(data) == ("TUSD", "USD", PairReading(guard))


def _shared(value: object, observed_at: str = "2026-12-02T12:00:00+00:00", **extra: object) -> bytes:
    rate = {"value": value, "source": "x", "observed_at": observed_at}
    return json.dumps({"asset": "ETH", "currency": "USD", "rate": rate, **extra}).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"asset": "ETH"}',
        _shared(3120.55),  # a float: never
        _shared("1e3"),
        _shared("1", "2026-12-02T12:00:00"),  # no time zone
        _shared("1", "yesterday"),
        _shared("1", error=5),
    ],
)
def test_malformed_shared_values_are_refused(data):
    with pytest.raises(ReadingFormatError):
        decode_reading(data)
