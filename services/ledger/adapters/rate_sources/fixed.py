"""A fixed rate (a stablecoin 1:1 with its currency). `fetch()` returns the fixed
value as of now; a guarded pair's `guard` is the market source (chainlink,
coinbase or kraken, built like any other) whose price the RateBook compares with
the fixed value before quoting it (the depeg check)."""

from __future__ import annotations

from services.ledger.adapters.rate_sources.base import Clock, RateSource, utc_now
from services.ledger.domain.pricing import Rate
from services.ledger.rates_config import FixedRate


class FixedSource:
    kind = "fixed"

    def __init__(self, config: FixedRate, guard: RateSource | None, *, clock: Clock = utc_now) -> None:
        self.config = config
        self.guard = guard
        self.description = config.describe()
        self._clock = clock

    async def fetch(self) -> Rate:
        return Rate(self.config.asset, self.config.currency, self.config.value, self.description, self._clock())
