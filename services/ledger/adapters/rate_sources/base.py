"""What every rate source is, and the budgets they keep."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import httpx

from services.ledger.domain.pricing import Rate

# The tickers' HTTP budget: a connection within 2 s, the whole answer within 5 s.
CONNECT_TIMEOUT_SECONDS = 2.0
TOTAL_TIMEOUT_SECONDS = 5.0
# A chain node answers an eth_call within this (two attempts fit the total budget).
RPC_TIMEOUT_SECONDS = 2.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class RateSource(Protocol):
    kind: str  # chainlink | coinbase | kraken | fixed (the metrics' label)
    description: str  # "chainlink 31337:0x5FbD...", "coinbase", ...: errors start with it

    async def fetch(self) -> Rate:
        """The source's rate now; RateSourceError (message starting with the
        description) when it has none usable."""
        ...


def ticker_client() -> httpx.AsyncClient:
    """The HTTP client of the ticker sources (no environment proxies: the URL in rates.yaml is what is asked)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(TOTAL_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        trust_env=False,
        headers={"Accept": "application/json", "User-Agent": "paymesh-ledger"},
        follow_redirects=False,
    )
