"""Kraken's public ticker: GET {url}/0/public/Ticker?pair={pair} (pair default
ASSET+CURRENCY, e.g. ETHUSD), answered `{"error": [], "result": {"XETHZUSD": {"c":
["3120.55000", "0.01"], ...}}}` — the rate is `c[0]`, the last trade. Kraken
reports errors with HTTP 200 and a non-empty `error` list. The answer carries no
time: the Rate's observed_at is when it arrived."""

from __future__ import annotations

import httpx

from services.ledger.adapters.rate_sources.base import Clock, utc_now
from services.ledger.adapters.rate_sources.http_ticker import get_json
from services.ledger.domain.pricing import Rate
from services.ledger.domain.rate_sources import RateSourceError, kraken_ticker_rate
from services.ledger.rates_config import KrakenRate


class KrakenSource:
    kind = "kraken"

    def __init__(self, config: KrakenRate, client: httpx.AsyncClient, *, clock: Clock = utc_now) -> None:
        self.config = config
        self.client = client
        self.description = config.describe()
        self.pair = config.kraken_pair
        self.url = f"{config.url}/0/public/Ticker?pair={self.pair}"
        self._clock = clock

    async def fetch(self) -> Rate:
        status, body = await get_json(self.client, self.url, self.description)
        if status != 200:
            errors = body.get("error") if isinstance(body, dict) else None
            said = "; ".join(map(str, errors)) if isinstance(errors, list) and errors else str(body)[:200]
            raise RateSourceError(f"{self.description}: {self.url} answered HTTP {status}: {said[:300]}")
        value = kraken_ticker_rate(body, pair=self.pair)
        return Rate(self.config.asset, self.config.currency, value, self.description, self._clock())
