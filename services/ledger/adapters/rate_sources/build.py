"""The sources of a loaded rates.yaml: one per pair, one JSON-RPC client per chain,
one HTTP client for every ticker."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from services.common.chains import Chains
from services.common.evm_rpc import EvmRpc
from services.ledger.adapters.rate_sources.base import RPC_TIMEOUT_SECONDS, Clock, RateSource, ticker_client, utc_now
from services.ledger.adapters.rate_sources.chainlink import ChainlinkSource
from services.ledger.adapters.rate_sources.coinbase import CoinbaseSource
from services.ledger.adapters.rate_sources.fixed import FixedSource
from services.ledger.adapters.rate_sources.kraken import KrakenSource
from services.ledger.domain.rate_book import pair_key
from services.ledger.rates_config import ChainlinkRate, CoinbaseRate, FixedRate, KrakenRate, RatesFile


@dataclass
class Sources:
    """One source per configured pair (by pair_key), and the clients they share."""

    by_pair: dict[tuple[str, str], RateSource]
    rpcs: list[EvmRpc] = field(default_factory=list)
    http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        for rpc in self.rpcs:
            await rpc.aclose()
        if self.http is not None:
            await self.http.aclose()


def build_sources(config: RatesFile, chains: Chains, *, clock: Clock = utc_now) -> Sources:
    """A RateSource for every pair of rates.yaml (a fixed pair's guard inside its FixedSource)."""
    sources = Sources({})
    rpcs: dict[int, EvmRpc] = {}

    def market(entry: ChainlinkRate | CoinbaseRate | KrakenRate) -> RateSource:
        if isinstance(entry, ChainlinkRate):
            chain = chains.get(entry.chain_id)
            if chain is None:  # pragma: no cover - refused by load_rates
                raise ValueError(f"chain {entry.chain_id} is not in chains.yaml")
            if entry.chain_id not in rpcs:
                rpcs[entry.chain_id] = EvmRpc(
                    chain.rpc_url,
                    chain_id=entry.chain_id,
                    caller="ledger-rates",
                    timeout=RPC_TIMEOUT_SECONDS,
                    attempts=2,
                )
                sources.rpcs.append(rpcs[entry.chain_id])
            return ChainlinkSource(entry, rpcs[entry.chain_id], clock=clock)
        if sources.http is None:
            sources.http = ticker_client()
        if isinstance(entry, CoinbaseRate):
            return CoinbaseSource(entry, sources.http, clock=clock)
        return KrakenSource(entry, sources.http, clock=clock)

    for entry in config.rates:
        key = pair_key(entry.asset, entry.currency)
        if isinstance(entry, FixedRate):
            guard = None if entry.guard is None else market(entry.guard)
            sources.by_pair[key] = FixedSource(entry, guard, clock=clock)
        else:
            sources.by_pair[key] = market(entry)
    return sources
