"""chains.yaml: the chains the mesh watches, validated on load.

`${VAR}` and `${VAR:-default}` in string values are expanded from the
environment, so RPC URLs (which often carry API keys) stay out of the file.
Errors name the file, the field and the chain, e.g.
`chains.yaml: chains[0].tokens[1].address (chain 8453, base): ...`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ChainConfigError(ValueError):
    """chains.yaml is missing, unreadable or invalid; the message says where."""


class TokenConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9.\-_]+$")
    address: str
    decimals: int = Field(ge=0, le=36)

    @field_validator("address")
    @classmethod
    def _checksum(cls, value: str) -> str:
        if not is_address(value):
            raise ValueError(f"not an EVM address: {value!r}")
        return to_checksum_address(value)


class NativeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str = Field("ETH", min_length=1, max_length=16, pattern=r"^[A-Za-z0-9.\-_]+$")
    decimals: int = Field(18, ge=0, le=36)


class RpcEndpointConfig(BaseModel):
    """One provider's HTTP JSON-RPC endpoint of a chain (services/common/rpc_pool.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1)
    # Share of the reads among healthy endpoints of equal standing (1: an equal share).
    weight: int = Field(1, gt=0, le=1000)
    # The provider's request budget (its rate limit); 0: no limit of our own.
    requests_per_second: float = Field(0, ge=0, le=100_000)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s):// URL, got {value!r}")
        return value


class WsEndpointConfig(BaseModel):
    """One provider's WebSocket endpoint of a chain (new heads)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _ws(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError(f"must be a ws(s):// URL, got {value!r}")
        return value


def _fill_providers(raw: dict, key: str, single: str, schemes: tuple[str, ...], *, required: bool) -> None:
    """Fill a chain's `key` list (rpc, ws) and `single` URL (rpc_url, ws_url) in from
    each other, in place: the list's first URL becomes the single one; a single URL
    with the right scheme becomes a list of one (a wrong one is left for its own
    field check to name). Refuses both forms at once, a duplicate URL, and for a
    `required` list none at all or an empty one."""
    if key in raw:
        if raw.get(single):
            raise ValueError(f"give {single} (one provider) or {key} (a list), not both")
        endpoints = raw[key]
        if required and (not isinstance(endpoints, list) or not endpoints):
            raise ValueError(f"{key}: the list of endpoints is empty; give at least one {{url: ...}}")
        if not isinstance(endpoints, list):
            raise ValueError(f"{key}: expected a list of endpoints")
        raw[key] = [e if isinstance(e, dict) else {"url": e} for e in endpoints]
        urls = [e.get("url") for e in raw[key]]
        dupes = sorted({u for u in urls if isinstance(u, str) and urls.count(u) > 1})
        if dupes:
            raise ValueError(f"{key}: the URL {dupes[0]!r} appears more than once")
        if raw[key] and isinstance(raw[key][0].get("url"), str):
            raw[single] = raw[key][0]["url"]
    elif raw.get(single):
        if str(raw[single]).startswith(schemes):
            raw[key] = [{"url": raw[single]}]
    elif required:
        raise ValueError(f"no provider: give {single} (one HTTP endpoint) or {key} (a list of {{url: ...}})")


class ChainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chain_id: int = Field(gt=0)
    name: str = Field(min_length=1, max_length=64)
    # One provider (rpc_url / ws_url), or several (rpc / ws lists); after loading both
    # forms are filled in: rpc_url is the first of rpc, rpc holds rpc_url alone.
    rpc: tuple[RpcEndpointConfig, ...] = ()
    ws: tuple[WsEndpointConfig, ...] = ()
    rpc_url: str = Field(min_length=1)
    ws_url: str = ""
    # Reads at the head skip an endpoint whose head is more than this many blocks
    # behind the best head the chain's endpoints report.
    max_head_lag_blocks: int = Field(5, ge=0, le=10_000)
    # With several providers: the listener publishes a head (what confirms transfers)
    # only once two endpoints report the same hash for the deepest block it confirms.
    confirmation_agreement: bool = False
    # The block that includes a transfer is its first confirmation (services/common/confirmations.py).
    confirmations: int = Field(le=1000)
    block_time_seconds: float = Field(gt=0, le=600)
    eip1559: bool = True
    native: NativeConfig = NativeConfig()
    tokens: tuple[TokenConfig, ...] = ()
    # How the listener sees native coin moved by contracts (a smart-contract wallet,
    # an exchange's batch withdrawal): "" (not at all), "debug_trace"
    # (debug_traceBlockByHash with callTracer: geth, reth, erigon, nethermind and most
    # providers' debug add-ons) or "trace_block" (Parity-style traces: erigon, reth,
    # nethermind). Costs one trace per non-empty block while addresses are watched.
    internal_transfers: Literal["", "debug_trace", "trace_block"] = ""
    # The L1 data fee a rollup charges on top of gas, which the sweeper must leave
    # for: "" (none) or "op_stack" (OP Mainnet, Base and other OP-stack chains: the
    # GasPriceOracle predeploy's getL1Fee, with headroom).
    l1_data_fee: Literal["", "op_stack"] = ""

    @model_validator(mode="before")
    @classmethod
    def _endpoints(cls, raw: Any) -> Any:
        """The two forms of a chain's providers, filled in from each other."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        _fill_providers(raw, "rpc", "rpc_url", ("http://", "https://"), required=True)
        _fill_providers(raw, "ws", "ws_url", ("ws://", "wss://"), required=False)
        return raw

    @field_validator("internal_transfers", "l1_data_fee", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off`/`no`/`false` as False; all mean "not at all".
        return "" if value is False or value is None else value

    @field_validator("confirmations")
    @classmethod
    def _depth(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"must be 1 or more, got {value}: the block that includes a transfer is its first confirmation, "
                "so 1 counts a transfer as soon as it is mined (no reorg protection: only for chains with "
                "instant finality); N survives any reorg that replaces at most N-1 blocks"
            )
        return value

    @field_validator("rpc_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s):// URL, got {value!r}")
        return value

    @field_validator("ws_url")
    @classmethod
    def _ws(cls, value: str) -> str:
        if value and not value.startswith(("ws://", "wss://")):
            raise ValueError(f"must be a ws(s):// URL or empty, got {value!r}")
        return value

    @model_validator(mode="after")
    def _agreement_needs_two(self) -> ChainConfig:
        if self.confirmation_agreement and len(self.rpc) < 2:
            raise ValueError("confirmation_agreement needs two or more endpoints in rpc (one cannot agree with itself)")
        return self

    @model_validator(mode="after")
    def _unique_symbols(self) -> ChainConfig:
        seen = {self.native.symbol.upper()}
        for token in self.tokens:
            if token.symbol.upper() in seen:
                raise ValueError(f"asset symbol {token.symbol!r} appears twice on this chain")
            seen.add(token.symbol.upper())
        return self

    def asset(self, symbol: str) -> Asset | None:
        """The asset with this symbol (case-insensitive), or None."""
        wanted = symbol.strip().upper()
        if wanted == self.native.symbol.upper():
            return Asset(self.native.symbol, None, self.native.decimals)
        for token in self.tokens:
            if token.symbol.upper() == wanted:
                return Asset(token.symbol, token.address, token.decimals)
        return None

    def symbol_of(self, token_address: str | None) -> str:
        """The symbol of the native coin (None) or of a configured token; "" for a token
        chains.yaml does not list."""
        if not token_address:
            return self.native.symbol
        wanted = token_address.lower()
        return next((t.symbol for t in self.tokens if t.address.lower() == wanted), "")

    def asset_symbols(self) -> list[str]:
        return [self.native.symbol, *(t.symbol for t in self.tokens)]

    @property
    def assets(self) -> list[Asset]:
        """Every asset of the chain: the native coin, then the tokens in file order."""
        return [
            Asset(self.native.symbol, None, self.native.decimals),
            *(Asset(t.symbol, t.address, t.decimals) for t in self.tokens),
        ]


@dataclass(frozen=True)
class Asset:
    """An asset of a chain: native when token_address is None."""

    symbol: str
    token_address: str | None
    decimals: int


class ChainsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chains: tuple[ChainConfig, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> ChainsFile:
        ids = [c.chain_id for c in self.chains]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"chain_id {dupes[0]} appears more than once")
        return self


class Chains:
    """The loaded chains, by id."""

    def __init__(self, chains: tuple[ChainConfig, ...]) -> None:
        self._by_id = {c.chain_id: c for c in chains}

    def __iter__(self):
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, chain_id: int) -> ChainConfig | None:
        return self._by_id.get(chain_id)

    def ids(self) -> list[int]:
        return list(self._by_id)

    @property
    def max_confirmations(self) -> int:
        return max(c.confirmations for c in self._by_id.values())


def expand_env(value: Any, where: str, env: dict[str, str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            raise ChainConfigError(f"{where}: environment variable {name} is not set")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}" if where else str(k), env) for k, v in value.items()}
    return value


def load_chains(path: Path | str, env: dict[str, str] | None = None) -> Chains:
    """Load and validate chains.yaml; raise ChainConfigError naming file and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ChainConfigError(f"{path}: file not found (set PAYMESH_CHAINS_FILE)") from None
    except yaml.YAMLError as exc:
        raise ChainConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ChainConfigError(f"{path}: expected a mapping with a 'chains' list")
    try:
        expanded = expand_env(raw, "", dict(os.environ if env is None else env))
    except ChainConfigError as exc:
        raise ChainConfigError(f"{path}: {exc}") from None
    try:
        parsed = ChainsFile.model_validate(expanded)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
        message = first["msg"].removeprefix("Value error, ")
        where = f"{loc or '(top level)'}{_chain_named(expanded, first['loc'])}"
        raise ChainConfigError(f"{path}: {where}: {message}") from None
    return Chains(parsed.chains)


def _chain_named(raw: Any, loc: tuple[Any, ...]) -> str:
    """` (chain 1, mainnet)` for an error inside chains[i], from what the file says."""
    if len(loc) < 2 or loc[0] != "chains" or not isinstance(loc[1], int) or not isinstance(raw.get("chains"), list):
        return ""
    entries = raw["chains"]
    entry = entries[loc[1]] if loc[1] < len(entries) else None
    if not isinstance(entry, dict):
        return ""
    named = [str(entry[k]) for k in ("chain_id", "name") if isinstance(entry.get(k), (int, str)) and entry.get(k) != ""]
    return f" (chain {', '.join(named)})" if named else ""
