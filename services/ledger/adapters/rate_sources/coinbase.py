"""Coinbase's public spot price: GET {url}/v2/prices/{ASSET}-{CURRENCY}/spot,
answered `{"data": {"amount": "3120.55", "base": "ETH", "currency": "USD"}}` (an
unknown pair: HTTP 404 `{"errors": [{"id": "not_found", "message": ...}]}`). The
answer carries no time: the Rate's observed_at is when it arrived."""

from __future__ import annotations

import httpx

from services.ledger.adapters.rate_sources.base import Clock, utc_now
from services.ledger.adapters.rate_sources.http_ticker import get_json
from services.ledger.domain.pricing import Rate
from services.ledger.domain.rate_sources import RateSourceError, coinbase_spot_rate
from services.ledger.rates_config import CoinbaseRate


class CoinbaseSource:
    kind = "coinbase"

    def __init__(self, config: CoinbaseRate, client: httpx.AsyncClient, *, clock: Clock = utc_now) -> None:
        self.config = config
        self.client = client
        self.description = config.describe()
        self.base = config.asset.upper()
        self.url = f"{config.url}/v2/prices/{self.base}-{config.currency}/spot"
        self._clock = clock

    async def fetch(self) -> Rate:
        status, body = await get_json(self.client, self.url, self.description)
        if status != 200:
            errors = body.get("errors") if isinstance(body, dict) else None
            said = (
                "; ".join(f"{e.get('message', '')} ({e.get('id', '')})" for e in errors or [] if isinstance(e, dict))
                or str(body)[:200]
            )
            raise RateSourceError(f"{self.description}: {self.url} answered HTTP {status}: {said[:300]}")
        value = coinbase_spot_rate(body, base=self.base, quote=self.config.currency)
        return Rate(self.config.asset, self.config.currency, value, self.description, self._clock())
