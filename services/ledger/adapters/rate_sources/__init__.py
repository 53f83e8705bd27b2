"""The rate sources of rates.yaml, one module per kind (chainlink, coinbase, kraken,
fixed), each a `RateSource` whose `fetch()` returns a domain Rate or raises
RateSourceError with a message that starts with the source's description and says
what to fix. `build_sources` makes one per configured pair, sharing one JSON-RPC
client per chain and one HTTP client for the tickers."""

from services.ledger.adapters.rate_sources.base import RateSource
from services.ledger.adapters.rate_sources.build import Sources, build_sources

__all__ = ["RateSource", "Sources", "build_sources"]
