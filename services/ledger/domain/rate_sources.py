"""What rate sources answer, read into exact rates. Pure: the adapters fetch, this parses.

- Chainlink price feeds (`AggregatorV3Interface`): `latestRoundData()` returns
  (roundId uint80, answer int256, startedAt uint256, updatedAt uint256,
  answeredInRound uint80) and `decimals()` the answer's scale. A round is usable
  when `answer > 0`, `updatedAt` is set and not older than the source's max age,
  and it is not stale by round (`answeredInRound >= roundId`).
- Coinbase's spot price (`GET /v2/prices/ETH-USD/spot`):
  `{"data": {"amount": "3120.55", "base": "ETH", "currency": "USD"}}`.
- Kraken's ticker (`GET /0/public/Ticker?pair=ETHUSD`):
  `{"error": [], "result": {"XETHZUSD": {"c": ["3120.55000", "0.01"], ...}}}` —
  `c` is the last trade closed: [price, lot volume].

Every parser raises RateSourceError with a message that names what was wrong,
never returns a rate it had to guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.ledger.domain.pricing import PricingError, parse_rate, scaled

# keccak256 selectors of AggregatorV3Interface.
LATEST_ROUND_DATA = "0xfeaf968c"
DECIMALS = "0x313ce567"


class RateSourceError(ValueError):
    """A source's answer is not a usable rate."""


@dataclass(frozen=True)
class RoundData:
    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int


def _words(data: str, count: int, what: str) -> list[int]:
    if not isinstance(data, str) or not data.startswith("0x"):
        raise RateSourceError(f"{what}: the node's answer is not 0x-hex")
    body = data[2:]
    if len(body) < 64 * count:
        raise RateSourceError(f"{what}: the answer has {len(body) // 64} words, {count} expected (is it a feed?)")
    try:
        return [int(body[i * 64 : (i + 1) * 64], 16) for i in range(count)]
    except ValueError:
        raise RateSourceError(f"{what}: the answer is not hexadecimal") from None


def decode_latest_round_data(data: str) -> RoundData:
    round_id, answer, started_at, updated_at, answered_in_round = _words(data, 5, "latestRoundData")
    if answer >= 2**255:
        answer -= 2**256  # int256
    return RoundData(round_id, answer, started_at, updated_at, answered_in_round)


def decode_decimals(data: str) -> int:
    (value,) = _words(data, 1, "decimals")
    if value > 36:
        raise RateSourceError(f"decimals: the feed says {value} decimals, which no price feed uses")
    return value


def chainlink_rate(
    round_data: RoundData, decimals: int, *, now: datetime, max_age_seconds: float
) -> tuple[Decimal, datetime]:
    """(rate, time it was updated on chain) from a feed's latest round; RateSourceError
    if the feed is not usable now."""
    if round_data.answer <= 0:
        raise RateSourceError(f"the feed's answer is {round_data.answer}, not a positive price")
    if round_data.updated_at == 0:
        raise RateSourceError("the feed's round has no updatedAt (round not complete)")
    if round_data.answered_in_round < round_data.round_id:
        raise RateSourceError(
            f"the feed's round {round_data.round_id} was answered in an earlier round ({round_data.answered_in_round})"
        )
    updated = datetime.fromtimestamp(round_data.updated_at, UTC)
    age = (now - updated).total_seconds()
    if age > max_age_seconds:
        raise RateSourceError(
            f"the feed was last updated {age:.0f} s ago, more than its max age of {max_age_seconds:.0f} s"
        )
    return scaled(round_data.answer, decimals), updated


def _rate(text: Any, what: str) -> Decimal:
    if not isinstance(text, str):
        raise RateSourceError(f"{what}: the price is not a string")
    try:
        return parse_rate(text)
    except PricingError as err:
        raise RateSourceError(f"{what}: {err}") from None


def coinbase_spot_rate(body: Any, *, base: str, quote: str) -> Decimal:
    """The rate from Coinbase's `/v2/prices/{base}-{quote}/spot` JSON."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        errors = body.get("errors") if isinstance(body, dict) else None
        raise RateSourceError(f"coinbase: no data in the answer{f' ({errors})' if errors else ''}")
    if data.get("base") != base or data.get("currency") != quote:
        raise RateSourceError(
            f"coinbase: the answer is for {data.get('base')}-{data.get('currency')}, not {base}-{quote}"
        )
    return _rate(data.get("amount"), "coinbase")


def kraken_ticker_rate(body: Any, *, pair: str) -> Decimal:
    """The last trade price from Kraken's `/0/public/Ticker?pair={pair}` JSON (the
    result is keyed by Kraken's own name for the pair, e.g. XETHZUSD for ETHUSD)."""
    if not isinstance(body, dict):
        raise RateSourceError("kraken: the answer is not a JSON object")
    if body.get("error"):
        raise RateSourceError(f"kraken: {'; '.join(map(str, body['error']))[:200]}")
    result = body.get("result")
    if not isinstance(result, dict) or len(result) != 1:
        raise RateSourceError(f"kraken: expected one pair in the result for {pair}")
    (ticker,) = result.values()
    close = ticker.get("c") if isinstance(ticker, dict) else None
    if not isinstance(close, list) or not close:
        raise RateSourceError("kraken: the ticker has no last trade (c)")
    return _rate(close[0], "kraken")
