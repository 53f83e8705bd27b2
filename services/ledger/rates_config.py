"""rates.yaml: where the ledger gets the fiat value of each asset, validated on load.

    lock_window_seconds: 900      # how long a quote is honoured (default 900)
    refresh_seconds: 10           # how often every pair is fetched (default 10)
    rates:
      - {asset: ETH, currency: USD, source: chainlink, chain_id: 1, feed: "0x5f4e...", max_age_seconds: 3600}
      - {asset: ETH, currency: EUR, source: coinbase, max_age_seconds: 120}      # url: https://api.coinbase.com
      - {asset: ETH, currency: GBP, source: kraken, max_age_seconds: 120}        # url, pair (default ETHGBP)
      - asset: USDC
        currency: USD
        source: fixed                # 1:1 (value: "1" by default)
        guard: {source: chainlink, chain_id: 1, feed: "0x8fFf...", max_age_seconds: 86400}
        max_deviation_bps: 200       # refuse new USDC payments while the guard is more than 2% off

Guarantees of `load_rates`: the result has at most one source per (asset,
currency), every asset is a symbol of chains.yaml, every currency an ISO 4217
code, every chain id one of chains.yaml, every feed a checksummed address, every
max age positive and no shorter than the refresh interval, a guard exactly when a
max deviation is given, and no float anywhere money is written (a fixed value is
a decimal string). Anything else raises RatesConfigError naming the file, the
field and the pair, e.g. `rates.yaml: rates[1].feed (ETH/USD): not an EVM address`.
`${VAR}` and `${VAR:-default}` are expanded from the environment as in
chains.yaml (the same function).
"""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from eth_utils import is_checksum_address, is_hex_address, to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.common.chains import ChainConfigError, Chains, expand_env
from services.ledger.domain.pricing import PricingError, currency, parse_rate
from services.ledger.domain.rate_book import DEFAULT_LOCK_WINDOW, DEFAULT_REFRESH, PairRule

SOURCES = ("chainlink", "coinbase", "kraken", "fixed")
COINBASE_URL = "https://api.coinbase.com"
KRAKEN_URL = "https://api.kraken.com"
_SYMBOL = r"^[A-Za-z0-9.\-_]+$"


class RatesConfigError(ValueError):
    """rates.yaml is unreadable or invalid; the message says where."""


def _iso_currency(value: str) -> str:
    try:
        return currency(value).code
    except PricingError as err:
        raise ValueError(str(err)) from None


CurrencyCode = Annotated[str, AfterValidator(_iso_currency)]
Symbol = Annotated[str, Field(min_length=1, max_length=16, pattern=_SYMBOL)]


class _Pair(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    asset: Symbol
    currency: CurrencyCode
    max_age_seconds: float = Field(gt=0, le=30 * 86400)

    @field_validator("max_age_seconds", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number of seconds")
        return value

    @property
    def label(self) -> str:
        return f"{self.asset}/{self.currency}"

    @property
    def max_age(self) -> timedelta:
        return timedelta(seconds=self.max_age_seconds)


class ChainlinkRate(_Pair):
    """A Chainlink AggregatorV3 price feed, read by eth_call on a chain of chains.yaml."""

    source: Literal["chainlink"]
    chain_id: int = Field(gt=0)
    feed: str

    @field_validator("feed")
    @classmethod
    def _checksum(cls, value: str) -> str:
        if not isinstance(value, str) or not is_hex_address(value):
            raise ValueError(f"not an EVM address (0x and 40 hex digits): {str(value)[:60]!r}")
        body = value[2:]
        if body != body.lower() and body != body.upper() and not is_checksum_address(value):
            # Mixed case is an EIP-55 checksum: a wrong one means a mistyped address.
            raise ValueError(f"not an EVM address: {value!r} has a wrong EIP-55 checksum (mistyped?)")
        return to_checksum_address(value)

    def describe(self) -> str:
        return f"chainlink {self.chain_id}:{self.feed}"


class _HttpRate(_Pair):
    url: str

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s):// URL, got {value!r}")
        return value.rstrip("/")


class CoinbaseRate(_HttpRate):
    """Coinbase's public spot price, GET {url}/v2/prices/{ASSET}-{CURRENCY}/spot."""

    source: Literal["coinbase"]
    url: str = COINBASE_URL

    def describe(self) -> str:
        return "coinbase"


class KrakenRate(_HttpRate):
    """Kraken's public ticker (last trade), GET {url}/0/public/Ticker?pair={pair}."""

    source: Literal["kraken"]
    url: str = KRAKEN_URL
    pair: str = Field("", max_length=32, pattern=r"^[A-Za-z0-9]*$")  # default ASSET+CURRENCY, e.g. ETHUSD

    @property
    def kraken_pair(self) -> str:
        return self.pair or f"{self.asset.upper()}{self.currency}"

    def describe(self) -> str:
        return "kraken"


GuardSource = Annotated[ChainlinkRate | CoinbaseRate | KrakenRate, Field(discriminator="source")]


class FixedRate(BaseModel):
    """A fixed value (a stablecoin 1:1 with its currency), optionally guarded by a
    market source: while the guard's price is more than max_deviation_bps from the
    fixed value, the pair is refused (depeg)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    asset: Symbol
    currency: CurrencyCode
    source: Literal["fixed"]
    value: Decimal = Decimal(1)
    guard: GuardSource | None = None
    max_deviation_bps: int | None = Field(None, ge=1, le=10_000)

    @field_validator("value", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Decimal:
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError(f'write the value as a string such as "1" or "0.92", not a float ({value!r})')
        try:
            return parse_rate(str(value))
        except PricingError as err:
            raise ValueError(str(err)) from None

    @model_validator(mode="before")
    @classmethod
    def _guard_pair(cls, data: Any) -> Any:
        # The guard prices the same pair; it may say so or leave it implied.
        if isinstance(data, dict) and isinstance(data.get("guard"), dict):
            guard = dict(data["guard"])
            for name in ("asset", "currency"):
                guard.setdefault(name, data.get(name))
            data = {**data, "guard": guard}
        return data

    @model_validator(mode="after")
    def _guarded(self) -> FixedRate:
        if self.guard is not None:
            if (self.guard.asset.upper(), self.guard.currency) != (self.asset.upper(), self.currency):
                raise ValueError(
                    f"guard prices {self.guard.asset}/{self.guard.currency}; it must price {self.asset}/{self.currency}"
                )
            if self.max_deviation_bps is None:
                raise ValueError("a guard needs max_deviation_bps (how far from the fixed value is a depeg)")
        elif self.max_deviation_bps is not None:
            raise ValueError("max_deviation_bps needs a guard (the source whose price is compared)")
        return self

    @property
    def label(self) -> str:
        return f"{self.asset}/{self.currency}"

    def describe(self) -> str:
        return f"fixed (guarded by {self.guard.describe()})" if self.guard is not None else "fixed"


RateConfig = Annotated[ChainlinkRate | CoinbaseRate | KrakenRate | FixedRate, Field(discriminator="source")]


class RatesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lock_window_seconds: float = Field(DEFAULT_LOCK_WINDOW.total_seconds(), gt=0, le=7 * 86400)
    refresh_seconds: float = Field(DEFAULT_REFRESH.total_seconds(), gt=0, le=3600)
    rates: tuple[RateConfig, ...] = ()

    @property
    def lock_window(self) -> timedelta:
        return timedelta(seconds=self.lock_window_seconds)


def rule_of(entry: RateConfig) -> PairRule:
    """What the RateBook needs of one configured pair."""
    if isinstance(entry, FixedRate):
        guard = entry.guard
        return PairRule(
            entry.asset,
            entry.currency,
            entry.describe(),
            None if guard is None else guard.max_age,
            fixed_value=entry.value,
            guard_source="" if guard is None else guard.describe(),
            guard_max_age=None if guard is None else guard.max_age,
            max_deviation_bps=entry.max_deviation_bps,
        )
    return PairRule(entry.asset, entry.currency, entry.describe(), entry.max_age)


def _where(loc: tuple[Any, ...]) -> str:
    """`rates[1].guard.feed` from pydantic's loc, without the union tags it inserts."""
    parts: list[str] = []
    previous: Any = None
    for part in loc:
        if isinstance(part, str) and part in SOURCES and (isinstance(previous, int) or previous == "guard"):
            previous = part
            continue
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
        previous = part
    return "".join(parts).lstrip(".") or "(top level)"


def _pair_named(raw: Any, loc: tuple[Any, ...]) -> str:
    """` (ETH/USD)` for an error inside rates[i], from what the file says."""
    if len(loc) < 2 or loc[0] != "rates" or not isinstance(loc[1], int) or not isinstance(raw.get("rates"), list):
        return ""
    entries = raw["rates"]
    entry = entries[loc[1]] if loc[1] < len(entries) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("asset"), str):
        return ""
    return f" ({entry['asset']}/{entry.get('currency', '?')})"


def _check_against_chains(parsed: RatesFile, chains: Chains) -> None:
    symbols = {s.upper() for chain in chains for s in chain.asset_symbols()}
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(parsed.rates):
        named = f"rates[{i}]"
        key = (entry.asset.upper(), entry.currency)
        if key in seen:
            raise ValueError(f"{named} ({entry.label}): the pair appears more than once (also rates[{seen[key]}])")
        seen[key] = i
        if entry.asset.upper() not in symbols:
            raise ValueError(
                f"{named}.asset ({entry.label}): {entry.asset} is no asset of chains.yaml "
                f"(its assets: {', '.join(sorted(symbols))})"
            )
        checked: list[tuple[str, ChainlinkRate | CoinbaseRate | KrakenRate]] = []
        if isinstance(entry, FixedRate):
            if entry.guard is not None:
                checked.append((f"{named}.guard", entry.guard))
        else:
            checked.append((named, entry))
        for where, source in checked:
            if isinstance(source, ChainlinkRate) and chains.get(source.chain_id) is None:
                raise ValueError(
                    f"{where}.chain_id ({entry.label}): chain {source.chain_id} is not in chains.yaml "
                    f"(its chains: {', '.join(map(str, chains.ids()))})"
                )
            if source.max_age_seconds < parsed.refresh_seconds:
                raise ValueError(
                    f"{where}.max_age_seconds ({entry.label}): {source.max_age_seconds:g} s is shorter than "
                    f"refresh_seconds ({parsed.refresh_seconds:g} s): the rate would go stale between refreshes"
                )


def parse_rates(
    raw: Any, chains: Chains, *, path: Path | str = "rates.yaml", env: dict[str, str] | None = None
) -> RatesFile:
    """Validate rates.yaml's content (already read as YAML); RatesConfigError names
    the file, the field and the pair."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RatesConfigError(f"{path}: expected a mapping with a 'rates' list")
    try:
        expanded = expand_env(raw, "", dict(os.environ if env is None else env))
    except ChainConfigError as exc:
        raise RatesConfigError(f"{path}: {exc}") from None
    try:
        parsed = RatesFile.model_validate(expanded)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "union_tag_invalid":
            message = f"unknown source {first['input'].get('source')!r}; one of {', '.join(SOURCES)}"
        elif first["type"] == "union_tag_not_found":
            message = f"no source; one of {', '.join(SOURCES)}"
        where = f"{_where(tuple(first['loc']))}{_pair_named(expanded, tuple(first['loc']))}"
        raise RatesConfigError(f"{path}: {where}: {message}") from None
    try:
        _check_against_chains(parsed, chains)
    except ValueError as exc:
        raise RatesConfigError(f"{path}: {exc}") from None
    return parsed


def load_rates(path: Path | str, chains: Chains, env: dict[str, str] | None = None) -> RatesFile:
    """Load and validate rates.yaml; RatesConfigError naming file and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RatesConfigError(f"{path}: file not found (set PAYMESH_RATES_FILE)") from None
    except yaml.YAMLError as exc:
        raise RatesConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_rates(raw, chains, path=path, env=env)
