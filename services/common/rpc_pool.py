"""Several RPC providers of one chain behind the EvmRpc interface: failover, health,
head lag, request budgets, and broadcasts to more than one.

`RpcPool` holds one single-attempt client (EvmRpc or a service's subclass) per
endpoint of chains.yaml (`rpc:`), and answers `call`, `batch` and the typed methods
(`RpcMethods`) the way one client did, so the listener and the sweeper use it as
they used a client:

- each call goes to the first endpoint of `provider_health.order` (healthy ones at
  random by weight, then over-budget, lagging and cooling ones); a transient failure
  (unreachable, timeout, HTTP 429/5xx, malformed answer) marks that endpoint and the
  call moves to the next one at once, up to `attempts` tries in all (at least one per
  endpoint); a JSON-RPC error that is an answer (a revert, "nonce too low") is the
  caller's and is not retried elsewhere;
- `pinned()` keeps the calls of one unit of work (a range read) on one endpoint, so
  two providers on different forks are not mixed into one view; the listener's
  reader also checks that every block, receipt and log links by hash, so a mix that
  still happens (the pinned endpoint failed mid-read) is caught and read again;
- `probe()` asks every endpoint for its head every few seconds: that is how lag is
  measured and how a cooled-down endpoint comes back; it also compares their block
  hashes at a height all of them have, and leaves out those on another fork than
  most of them (by weight; a tie goes to the endpoint listed first), and checks once
  with eth_chainId that each serves the configured chain;
- `send_raw_transaction` sends the same signed bytes to every usable endpoint (up to
  BROADCAST_FANOUT) and succeeds when any accepts them (the same bytes: the same
  hash, so a second acceptance is harmless);
- `status()` reports each endpoint (GetStatus, metrics), by a name without its URL
  (provider URLs carry API keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import structlog
from prometheus_client import Counter, Gauge

from services.common.evm_rpc import EvmRpc, RpcError, RpcMethods, RpcUnavailable
from services.common.provider_health import EndpointHealth, best_head, canonical_hash, order

log = structlog.get_logger("rpc_pool")
T = TypeVar("T")

BROADCAST_FANOUT = 3
RETRY_PAUSE_SECONDS = 0.05  # before trying an endpoint a second time in one call (doubling, at most 1 s)

ENDPOINT_UP = Gauge(
    "paymesh_rpc_endpoint_up",
    "1 while a chain's RPC endpoint is healthy (not cooling down, lagging, over budget, forked, wrong chain).",
    ["chain_id", "caller", "endpoint"],
)
ENDPOINT_LAG = Gauge(
    "paymesh_rpc_endpoint_head_lag_blocks",
    "How many blocks an RPC endpoint's head is behind the best head of the chain's endpoints.",
    ["chain_id", "caller", "endpoint"],
)
ENDPOINT_CALLS = Counter(
    "paymesh_rpc_endpoint_calls_total",
    "Calls to each RPC endpoint, by outcome (ok, answer: a JSON-RPC error that is an answer, failed).",
    ["chain_id", "caller", "endpoint", "outcome"],
)
FAILOVERS = Counter(
    "paymesh_rpc_failovers_total",
    "Calls that failed on one RPC endpoint and were tried on another.",
    ["chain_id", "caller"],
)

_PINNED: contextvars.ContextVar[dict[int, int] | None] = contextvars.ContextVar("rpc_pool_pinned", default=None)


def endpoint_name(index: int, url: str) -> str:
    """`#1 host` (the URL's path and query often hold an API key)."""
    host = urlsplit(url).hostname or "?"
    port = urlsplit(url).port
    return f"#{index + 1} {host}{f':{port}' if port else ''}"


@dataclass(frozen=True)
class EndpointStatus:
    name: str
    state: str  # healthy, cooling, lagging, over_budget
    head: int
    lag: int
    latency_ms: float
    requests: int
    errors: int
    last_error: str
    weight: int


class RpcPool(RpcMethods):
    def __init__(
        self,
        clients: Sequence[EvmRpc],
        *,
        chain_id: int,
        caller: str,
        weights: Sequence[int] = (),
        budgets: Sequence[float] = (),
        max_head_lag: int = 5,
        attempts: int = 3,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not clients:
            raise ValueError("an RPC pool needs at least one endpoint")
        self.clients = list(clients)
        self.chain_id = chain_id
        self.health = [
            EndpointHealth(
                name=endpoint_name(i, c.url),
                weight=weights[i] if i < len(weights) else 1,
                requests_per_second=budgets[i] if i < len(budgets) else 0.0,
            )
            for i, c in enumerate(self.clients)
        ]
        self.max_head_lag = max_head_lag
        self._attempts = max(attempts, len(self.clients))
        self._rng = rng or random.Random()
        self._clock = clock
        self._labels = (str(chain_id), caller or "-")
        self.last_error = ""
        self.error_class = clients[0].error_class
        for h in self.health:
            ENDPOINT_UP.labels(*self._labels, h.name).set(1)

    # ------------------------------------------------------------------ the single-client surface

    @property
    def url(self) -> str:
        return self.clients[0].url

    @property
    def max_batch(self) -> int:
        return self.clients[0].max_batch

    def is_transient(self, exc: BaseException) -> bool:
        return self.clients[0].is_transient(exc)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        return await self._run(method, lambda c: c.call(method, params))

    async def batch(self, method: str, params_list: Sequence[Sequence[Any]]) -> list[Any]:
        if not params_list:
            return []
        return await self._run(f"batch:{method}", lambda c: c.batch(method, params_list))

    async def block_number(self) -> int:
        number, index = await self._run_indexed("eth_blockNumber", lambda c: c.block_number())
        self.health[index].saw_head(number)
        return number

    async def send_raw_transaction(self, raw: bytes) -> str:
        """The same signed bytes to up to BROADCAST_FANOUT usable endpoints at once;
        the hash when any accepted them. When none did: the answer a node gave (a
        JSON-RPC error such as "nonce too low") before "unreachable"."""
        now = self._clock()
        targets = order(self.health, now, self.max_head_lag, self._rng)[:BROADCAST_FANOUT]
        indexes = [self.health.index(h) for h in targets]
        results = await asyncio.gather(
            *(self._attempt(i, "eth_sendRawTransaction", lambda c: c.send_raw_transaction(raw)) for i in indexes),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, str):
                return result
        answers = [r for r in results if isinstance(r, RpcError)]
        error = answers[0] if answers else next(r for r in results if isinstance(r, BaseException))
        raise error

    # ------------------------------------------------------------------ pinning, probing, status

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[None]:
        """Calls inside go to one endpoint (the best now) while it answers."""
        first = order(self.health, self._clock(), self.max_head_lag, self._rng)[0]
        pins = dict(_PINNED.get() or {})
        pins[id(self)] = self.health.index(first)
        token = _PINNED.set(pins)
        try:
            yield
        finally:
            _PINNED.reset(token)

    async def agreed(self, number: int, expected_hash: str, needed: int = 2) -> bool:
        """Whether at least `needed` endpoints (not forked, not on another chain) report
        `expected_hash` for block `number` now (one try each, all at once)."""
        candidates = [i for i, h in enumerate(self.health) if not (h.forked or h.wrong_chain)]
        hashes = await asyncio.gather(*(self._hash_at(i, number) for i in candidates))
        return sum(h == expected_hash.lower() for h in hashes) >= needed

    async def verify_chain_ids(self) -> list[tuple[int, int]]:
        """Ask each endpoint not yet checked which chain it serves (one try each);
        (index, chain id) of those that serve another chain, which are never used.
        An endpoint that does not answer now is checked at a later probe."""

        async def one(index: int) -> tuple[int, int] | None:
            health = self.health[index]
            if health.served_chain_id is not None:
                return (index, health.served_chain_id) if health.wrong_chain else None
            served = await self._once(index, "eth_chainId", lambda c: c.get_chain_id())
            if served is None:
                return None  # down now: checked at a later probe
            health.served_chain_id = served
            if served != self.chain_id:
                health.wrong_chain = True
                log.error(
                    "rpc endpoint serves another chain; never used",
                    chain_id=self.chain_id,
                    endpoint=health.name,
                    served_chain_id=served,
                )
                return index, served
            return None

        found = await asyncio.gather(*(one(i) for i in range(len(self.clients))))
        return [f for f in found if f is not None]

    async def probe_once(self) -> None:
        """Every endpoint's head (one try each): lag, and recovery after a cooldown."""
        await self.verify_chain_ids()

        async def head(index: int) -> int | None:
            if self.health[index].wrong_chain:
                return None
            number = await self._once(index, "eth_blockNumber", lambda c: c.block_number())
            if number is not None:
                self.health[index].saw_head(number)
            return number

        heads = await asyncio.gather(*(head(i) for i in range(len(self.clients))))
        answered = {i: h for i, h in enumerate(heads) if h is not None}
        if len(answered) >= 2:
            await self._check_forks(answered)
        self._publish()

    async def _check_forks(self, heads: dict[int, int]) -> None:
        """Compare the endpoints' block hashes at a height they all have (one below the
        lowest head, so a block being mined does not count): those on another fork than
        most (by weight) are left out until they agree again."""
        height = max(0, min(heads.values()) - 1)
        indexes = list(heads)
        found = await asyncio.gather(*(self._hash_at(i, height) for i in indexes))
        hashes = {i: h for i, h in zip(indexes, found, strict=True) if h is not None}
        canonical = canonical_hash(hashes, [h.weight for h in self.health])
        for index, value in hashes.items():
            health = self.health[index]
            forked = value != canonical
            if forked != health.forked:
                (log.error if forked else log.info)(
                    "rpc endpoint is on another fork; left out" if forked else "rpc endpoint agrees again",
                    chain_id=self.chain_id,
                    endpoint=health.name,
                    height=height,
                    block_hash=value,
                    canonical_hash=canonical,
                )
            health.forked = forked

    async def _once(self, index: int, label: str, fn: Callable[[EvmRpc], Awaitable[T]]) -> T | None:
        """One try on one endpoint; None when it failed (counted on the endpoint)."""
        try:
            return await self._attempt(index, label, fn)
        except Exception:  # noqa: BLE001 - recorded by _attempt; the caller treats None as "no answer"
            return None

    async def _hash_at(self, index: int, number: int) -> str | None:
        """The hash (lower case) one endpoint reports for block `number`; None without one."""
        block = await self._once(index, "eth_getBlockByNumber", lambda c: c.get_block(number))
        value = block.get("hash") if isinstance(block, dict) else None
        return value.lower() if isinstance(value, str) else None

    async def probe(self, stop: asyncio.Event, interval: float) -> None:
        """probe_once every `interval` seconds until `stop` (only useful with two or more endpoints)."""
        while not stop.is_set():
            await self.probe_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    def status(self) -> list[EndpointStatus]:
        now = self._clock()
        top = best_head(self.health)
        return [
            EndpointStatus(
                name=h.name,
                state=h.state(now, top, self.max_head_lag),
                head=h.head or 0,
                lag=h.lag(top),
                latency_ms=round((h.latency_seconds or 0.0) * 1000, 2),
                requests=h.requests,
                errors=h.errors,
                last_error=h.last_error,
                weight=h.weight,
            )
            for h in self.health
        ]

    def _publish(self) -> None:
        for s in self.status():
            ENDPOINT_UP.labels(*self._labels, s.name).set(1 if s.state == "healthy" else 0)
            ENDPOINT_LAG.labels(*self._labels, s.name).set(s.lag)

    # ------------------------------------------------------------------ failover

    async def _run(self, label: str, fn: Callable[[EvmRpc], Awaitable[T]]) -> T:
        result, _ = await self._run_indexed(label, fn)
        return result

    async def _run_indexed(self, label: str, fn: Callable[[EvmRpc], Awaitable[T]]) -> tuple[T, int]:
        last: BaseException | None = None
        tried: set[int] = set()
        for attempt in range(self._attempts):
            index = self._choose(tried)
            if index in tried:  # every endpoint failed once in this call: pause before the next round
                await asyncio.sleep(min(RETRY_PAUSE_SECONDS * 2 ** (attempt - len(self.clients)), 1.0))
            elif tried:
                FAILOVERS.labels(*self._labels).inc()
            tried.add(index)
            try:
                return await self._attempt(index, label, fn), index
            except Exception as exc:
                if not self.is_transient(exc):
                    raise
                last = exc
        assert last is not None
        self.last_error = f"{label}: every endpoint failed; last: {last}"[:500]
        raise last

    def _choose(self, tried: set[int]) -> int:
        pins = _PINNED.get()
        pinned = pins.get(id(self)) if pins else None
        if pinned is not None and pinned not in tried:
            return pinned
        ranked = [self.health.index(h) for h in order(self.health, self._clock(), self.max_head_lag, self._rng)]
        fresh = [i for i in ranked if i not in tried]
        return fresh[0] if fresh else ranked[0]

    async def _attempt(self, index: int, label: str, fn: Callable[[EvmRpc], Awaitable[T]]) -> T:
        health, client = self.health[index], self.clients[index]
        started = self._clock()
        health.spend(started)
        try:
            result = await fn(client)
        except Exception as exc:
            now = self._clock()
            if isinstance(exc, RpcError) and not client.is_transient(exc):
                health.succeeded(now - started, now)  # the node answered; the answer is the caller's
                ENDPOINT_CALLS.labels(*self._labels, health.name, "answer").inc()
                raise
            retry_after = exc.retry_after if isinstance(exc, RpcUnavailable) else None
            was_up = not health.cooling(now)
            health.failed(f"{label}: {exc}", now, retry_after)
            ENDPOINT_CALLS.labels(*self._labels, health.name, "failed").inc()
            ENDPOINT_UP.labels(*self._labels, health.name).set(0)
            if was_up:
                log.warning(
                    "rpc endpoint failing; using the others",
                    chain_id=self.chain_id,
                    endpoint=health.name,
                    error=health.last_error,
                    cooldown_seconds=round(health.cooldown_until - now, 2),
                )
            raise
        now = self._clock()
        if health.failures_in_row:
            log.info("rpc endpoint answers again", chain_id=self.chain_id, endpoint=health.name)
        health.succeeded(now - started, now)
        ENDPOINT_CALLS.labels(*self._labels, health.name, "ok").inc()
        return result


def build_pool(
    chain: Any,
    make_client: Callable[[str], EvmRpc],
    *,
    caller: str,
    attempts: int,
) -> RpcPool:
    """The pool of a chain's `rpc:` endpoints (chains.yaml), one single-attempt client each
    from `make_client(url)`."""
    return RpcPool(
        [make_client(e.url) for e in chain.rpc],
        chain_id=chain.chain_id,
        caller=caller,
        weights=[e.weight for e in chain.rpc],
        budgets=[e.requests_per_second for e in chain.rpc],
        max_head_lag=chain.max_head_lag_blocks,
        attempts=attempts,
    )


async def start_pools(
    chains_file: Any, chains: Sequence[Any], pools: Sequence[RpcPool], stop: asyncio.Event
) -> list[asyncio.Task]:
    """What a service does with its chains' pools at start: a first probe of the pools
    with several endpoints (heads and forks known before the first read), the start
    refused when an endpoint serves another chain, then a probe task per such pool
    every block time (1 to 15 s) until `stop`."""
    for pool in pools:
        if len(pool.clients) > 1:
            await pool.probe_once()
    await refuse_wrong_chains(chains_file, chains, pools)
    return [
        asyncio.create_task(
            pool.probe(stop, min(max(chain.block_time_seconds, 1.0), 15.0)), name=f"rpc-probe-{chain.chain_id}"
        )
        for chain, pool in zip(chains, pools, strict=True)
        if len(pool.clients) > 1
    ]


async def refuse_wrong_chains(chains_file: Any, chains: Sequence[Any], pools: Sequence[RpcPool]) -> None:
    """At start: ChainConfigError naming the file, the chain and the field when an
    endpoint that answers serves another chain (one that does not answer yet is
    checked by the probe later, and left out if it does)."""
    from services.common.chains import ChainConfigError, load_chains

    order_in_file = load_chains(chains_file).ids()
    for chain, pool in zip(chains, pools, strict=True):
        wrong = await pool.verify_chain_ids()
        if not wrong:
            continue
        position = order_in_file.index(chain.chain_id)
        index, served = wrong[0]
        field = f"chains[{position}].rpc[{index}].url" if len(chain.rpc) > 1 else f"chains[{position}].rpc_url"
        raise ChainConfigError(
            f"{chains_file}: {field} (chain {chain.chain_id}, {chain.name}): the endpoint "
            f"{endpoint_name(index, chain.rpc[index].url)} serves chain {served}, not {chain.chain_id}"
        )
