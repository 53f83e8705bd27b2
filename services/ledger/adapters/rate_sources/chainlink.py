"""A Chainlink price feed (AggregatorV3Interface) read with eth_call on the
configured chain's node: `decimals()` once (a feed's decimals never change; cached
after the first answer), `latestRoundData()` on every fetch. The round must be
usable by the domain's rules (services/ledger/domain/rate_sources.py): a positive
answer, updatedAt set and younger than the pair's max age, answeredInRound >=
roundId. The Rate's observed_at is the round's updatedAt (chain time)."""

from __future__ import annotations

from services.common.errors import MalformedResponse
from services.common.evm_rpc import EvmRpc, RpcError, RpcUnavailable
from services.ledger.adapters.rate_sources.base import Clock, utc_now
from services.ledger.domain import rate_sources as parse
from services.ledger.domain.pricing import Rate
from services.ledger.domain.rate_sources import RateSourceError
from services.ledger.rates_config import ChainlinkRate


class ChainlinkSource:
    kind = "chainlink"

    def __init__(self, config: ChainlinkRate, rpc: EvmRpc, *, clock: Clock = utc_now) -> None:
        self.config = config
        self.rpc = rpc
        self.description = config.describe()
        self._clock = clock
        self._decimals: int | None = None

    async def _call(self, selector: str, what: str) -> str:
        try:
            return await self.rpc.eth_call({"to": self.config.feed, "data": selector})
        except RpcError as exc:
            raise RateSourceError(
                f"{self.description}: {what} reverted or failed on the node ({exc.message or exc}); "
                "is the feed address right for this chain?"
            ) from None
        except (RpcUnavailable, MalformedResponse) as exc:
            raise RateSourceError(f"{self.description}: the chain's node did not answer {what}: {exc}") from None

    async def decimals(self) -> int:
        if self._decimals is None:
            data = await self._call(parse.DECIMALS, "decimals()")
            if data in ("0x", ""):
                raise RateSourceError(f"{self.description}: no contract answers decimals() at the feed address")
            try:
                self._decimals = parse.decode_decimals(data)
            except RateSourceError as exc:
                raise RateSourceError(f"{self.description}: {exc}") from None
        return self._decimals

    async def fetch(self) -> Rate:
        decimals = await self.decimals()
        data = await self._call(parse.LATEST_ROUND_DATA, "latestRoundData()")
        try:
            round_data = parse.decode_latest_round_data(data)
            value, updated = parse.chainlink_rate(
                round_data, decimals, now=self._clock(), max_age_seconds=self.config.max_age_seconds
            )
        except RateSourceError as exc:
            raise RateSourceError(f"{self.description}: {exc}") from None
        return Rate(self.config.asset, self.config.currency, value, self.description, updated)
